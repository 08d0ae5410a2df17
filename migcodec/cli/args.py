"""What every ``migcodec`` command shares about reading its command line.

Values are checked while parsing (argparse ``type=`` functions), so a wrong value is refused
with one line before any work starts, instead of failing later with a traceback or being
taken silently as something else (``--link 0`` as no limit, ``--memory 10000`` as two
pages). Sizes and rates go through the one parser of :mod:`migcodec.units`.

Exit statuses of every command: 0 success; 1 the work ran and failed (a migration that did
not converge or missed its downtime limit, a peer that broke the stream); 2 the command line
or its input must change (refused before or while starting); 130 interrupted (Ctrl-C);
141 stdout was closed early (``migcodec codecs --json | head``), as for Unix tools killed
by SIGPIPE.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from migcodec.files import cannot_create_in, special_kind
from migcodec.ram import thread_refused
from migcodec.units import parse_rate, parse_size
from migcodec.wire.format import MAX_BATCH_PAGES

#: every migration's page size: ``--memory`` must be a whole number of these
PAGE_SIZE = 4096
#: exit status after Ctrl-C: 128 + SIGINT, as a shell reports a process SIGINT ended
EXIT_INTERRUPTED = 130
#: exit status after SIGTERM: 128 + SIGTERM, as a shell reports a process SIGTERM ended
EXIT_TERMINATED = 143
#: exit status when stdout's reader went away: 128 + SIGPIPE, as for ``yes | head``
EXIT_BROKEN_PIPE = 141
#: the longest time any option waits or runs (about four months): longer is a typo, and
#: the operating system's timers refuse far longer ones with an overflow
MAX_SECONDS = 10**7
#: the most codec engines per codec: each is a thread with buffers of its own, and more
#: than a few per core only queue behind each other
MAX_WORKERS = 256
#: the most of anything counted (pages, windows, repeats): beyond it no run ends
MAX_COUNT = 10**9
#: the most repeats of a timing: its median settles within a few, and every repeat's
#: timings and features of a window are held until their medians are taken (a billion
#: asked numpy for 112 GB with the default arms, refused as "use a smaller --pages")
MAX_REPEATS = 1000
#: the most migrations a ``--sweep-dirty-rate`` runs per rate it tries: each is a whole
#: migration, and a search tries a dozen rates or so, so 100 is already over a thousand
#: migrations; a billion never ended (and held every report)
MAX_SWEEP_REPEATS = 100
#: the most windows ``evaluate --workload`` makes: its table keeps a row of a few KiB per
#: window (and every policy replays them all), so a million is already gigabytes and hours;
#: a billion grew without bound until the machine ran out of memory
MAX_WINDOWS = 10**6
#: the slowest link: one byte per second (a migration over it is bounded by its time limit)
MIN_LINK_RATE = 1.0


class CommandLineError(ValueError):
    """The command line asks for something that cannot be done; the message (one line) says
    what and how to change it. Commands exit with status 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block: ``--help`` has it),
    whose help shows defaults, and which reads ``-5MiB`` as a (refused) value, not as an
    unknown option.

    Subcommands' parsers are of the same class (argparse makes them with the class of the
    parser that owns the subparsers).
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # a dash and a digit is a negative value (refused by its type with a reason): no
        # migcodec option starts with a digit
        self._negative_number_matcher = re.compile(r"^-\.?[0-9]")

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def codec_names(text: str, option: str = "--codecs") -> list[str]:
    """Codec names from a comma-separated ``option``: at least one, each once (a name
    given twice was measured twice and shown as two rows or columns of one codec)."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise CommandLineError(
            f"{option} {text!r} names no codec; write names such as lz4,zstd "
            "(`migcodec codecs` lists them)"
        )
    listed = [name for name in names if ";" in name or " " in name]
    if listed:  # `evaluate --arms` separates arms with ';': here it was read as one name
        raise CommandLineError(
            f"{option} {text!r}: {listed[0]!r} is no codec's name; separate codecs with ',' "
            "(e.g. lz4,zstd)"
        )
    check_once(names, option, text, "codec")
    return names


def check_once(items: list[str], option: str, text: str, what: str) -> None:
    """Refuse ``option``'s value ``text`` when it lists an item twice: each would be
    measured or replayed twice and reported as two of one (``what``: what an item is)."""
    twice = sorted({item for item in items if items.count(item) > 1})
    if twice:
        raise CommandLineError(
            f"{option} {text!r} names {', '.join(twice)} more than once; name each {what} once"
        )


class Given(argparse.Action):
    """Store an option's value and note that the command line gave it (``given``, a set
    of destinations on the namespace): an option with a default that applies only beside
    another is refused when given without it, not ignored, which needs to know that it
    was given, not only its value."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


class Joined(Given):
    """Join the values of a comma-separated list option given more than once with commas:
    ``--link 1Gbit --link 10Gbit`` is ``--link 1Gbit,10Gbit`` (stored, the last given
    replaced the others, silently). The first one given replaces the default."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if given(namespace, self.dest):
            values = f"{getattr(namespace, self.dest)},{values}"
        super().__call__(parser, namespace, values, option_string)


def given(args: argparse.Namespace, dest: str) -> bool:
    """Whether the command line gave option ``dest`` (stored with :class:`Given`)."""
    return dest in getattr(args, "given", ())


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``(default: X)`` after every option that has a default worth showing: not after
    flags (off unless given) or options whose absence means something their help text says
    (a default of ``None``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False:
            return action.help or ""
        return super()._get_help_string(action) or ""


def _typed(name: str, convert: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type whose refusal is the converter's own one-line reason."""

    def parse(text: str) -> object:
        try:
            return convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    parse.__name__ = name
    return parse


def _memory_size(text: str) -> int:
    size = parse_size(text)
    if size < PAGE_SIZE:
        raise ValueError(
            f"{text!r} is less than one {PAGE_SIZE}-byte page; guest memory is at least a "
            "page, e.g. 64MiB"
        )
    if size % PAGE_SIZE:
        pages = size // PAGE_SIZE
        raise ValueError(
            f"{text!r} is {size} bytes, not a whole number of {PAGE_SIZE}-byte pages; write "
            f"a whole number of pages, e.g. {pages * PAGE_SIZE} or {(pages + 1) * PAGE_SIZE} "
            "(or 64MiB, 1GiB)"
        )
    return size


def _link_rate(text: str) -> float | None:
    if text.strip() == "unlimited":
        return None
    rate = parse_rate(text)
    if rate == 0:
        raise ValueError(
            f"a link of {text!r} carries nothing; write a rate such as 1Gbit, or 'unlimited' "
            "for no limit"
        )
    _check_link(text, rate)
    return rate


def _check_link(text: str, rate: float) -> None:
    if rate < MIN_LINK_RATE:
        raise ValueError(
            f"a link of {text!r} is slower than {MIN_LINK_RATE:g} byte/s; write a rate such "
            "as 1Mbit or 1Gbit"
        )


def _link_rates(text: str) -> str:
    """A comma-separated list of link rates, each checked, or ``unlimited`` (the reader
    models it); returned as written."""
    links = [link.strip() for link in text.split(",") if link.strip()]
    if not links:
        raise ValueError(f"{text!r} names no link rate; write e.g. 1Gbit or 1Gbit,10Gbit")
    if len(links) < len(text.split(",")):  # "1Gbit,,10Gbit": the empty one was dropped
        raise ValueError(
            f"{text!r} has an empty item (two commas in a row, or one at an end); write "
            "e.g. 1Gbit,10Gbit"
        )
    for link in links:
        if link == "unlimited":
            continue
        rate = parse_rate(link)
        if rate == 0:
            raise ValueError(f"a link of {link!r} carries nothing; write a rate such as 1Gbit")
        _check_link(link, rate)
    return text


def _whole(text: str, minimum: int, maximum: int = MAX_COUNT) -> int:
    try:  # ASCII: int() reads any script's digits as a number
        value = int(text) if text.isascii() else None
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ValueError(f"{text!r} is not a whole number >= {minimum}")
    if value > maximum:
        raise ValueError(f"{text!r} is more than {maximum}, the most this option takes")
    return value


def _number(
    text: str, what: str, example: str, least: float = 0.0, most: float = MAX_SECONDS
) -> float:
    """A positive, finite number of at least ``least`` and at most ``most``."""
    try:  # ASCII: float() reads any script's digits as a number
        value = float(text) if text.isascii() else math.nan
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{text!r} is not a positive, finite number of {what} (e.g. {example})")
    if value < least:
        raise ValueError(f"{text!r} is less than {least:g} {what}, the least this option takes")
    if value > most:
        raise ValueError(f"{text!r} is more than {most:g} {what}, the most this option takes")
    return value


#: bytes: ``64MiB``, ``4096``
size = _typed("size", parse_size)
#: guest memory in bytes: a whole number of pages
memory_size = _typed("memory_size", _memory_size)
#: bytes/s, 0 allowed (a guest that does not dirty its memory)
rate = _typed("rate", parse_rate)
#: bytes/s of a link, or ``None`` for ``unlimited``; 0 is refused (it carries nothing)
link_rate = _typed("link_rate", _link_rate)
#: ``1Gbit,10Gbit`` (or ``unlimited`` among them): every rate checked, the text returned
link_rates = _typed("link_rates", _link_rates)
#: 1, 2, ...
positive_int = _typed("positive_int", lambda text: _whole(text, 1))
#: codec engines per codec: 1 to MAX_WORKERS
workers = _typed("workers", lambda text: _whole(text, 1, MAX_WORKERS))
#: pages per encoded batch: 1 to the most a migration stream's frame carries. A larger
#: batch models no migration, and its calibration windows (two batches of every kind of
#: page, with four held versions each) grow with it: 100000 pages asked for 24 GiB
batch_pages = _typed("batch_pages", lambda text: _whole(text, 1, MAX_BATCH_PAGES))
#: 0, 1, ...
#: timings per measurement, their median taken: 1 to MAX_REPEATS
repeats = _typed("repeats", lambda text: _whole(text, 1, MAX_REPEATS))
#: windows of a synthetic workload's table: 1 to MAX_WINDOWS
windows = _typed("windows", lambda text: _whole(text, 1, MAX_WINDOWS))
#: migrations per rate of a dirty-rate sweep: 1 to MAX_SWEEP_REPEATS
sweep_repeats = _typed("sweep_repeats", lambda text: _whole(text, 1, MAX_SWEEP_REPEATS))
#: a random seed: 0, 1, ...
nonnegative_int = _typed("nonnegative_int", lambda text: _whole(text, 0))
seed = nonnegative_int  # a seed is any whole number from 0
#: seconds > 0
seconds = _typed("seconds", lambda text: _number(text, "seconds", "30 or 0.5"))
#: milliseconds > 0
milliseconds = _typed(
    "milliseconds",
    lambda text: _number(text, "milliseconds", "300 or 50", most=MAX_SECONDS * 1000.0),
)
#: a count that may be fractional (parallel encoders of a cost model): 0.01 to MAX_WORKERS
positive_number = _typed(
    "positive_number",
    lambda text: _number(text, "units", "2 or 1.5", least=0.01, most=MAX_WORKERS),
)


def check_trace_named(trace: str) -> None:
    """Refuse a TRACE given as an empty string: ``Path("")`` is the current directory, which
    would be read as the trace."""
    if not trace.strip():
        raise CommandLineError(
            f"TRACE {trace!r} names nothing; give a trace directory, e.g. corpus/traces/redis"
        )


def check_output_path(path: str | os.PathLike, option: str) -> None:
    """Refuse, before any work, an output file that could not be written at the end: its
    directory must exist and be writable, and it must be a regular file if it exists (a
    named pipe's open waits for a reader; a device such as /dev/full fails the write after
    the work, and a seekable format cannot be written to either)."""
    if not str(path).strip():
        raise CommandLineError(f"{option} {str(path)!r} names no file; give a path, e.g. run.png")
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise CommandLineError(f"{option} {path}: is a directory; give a file name, e.g. run.png")
    kind = special_kind(target)  # None when missing: made at the end
    if kind is not None:
        raise CommandLineError(
            f"{option} {path}: is {kind}, not a file; give a file name, e.g. run.png"
        )
    if not parent.is_dir():
        raise CommandLineError(
            f"{option} {path}: directory {parent} does not exist; create it first or write "
            "elsewhere"
        )
    why = cannot_create_in(parent)
    if why is not None:
        raise CommandLineError(
            f"{option} {path}: directory {parent} is not writable ({why}); write elsewhere"
        )


def check_plot_path(path: str | os.PathLike) -> None:
    """Refuse, before any work, a ``--plot`` that could not be drawn at the end: without
    matplotlib (:class:`~migcodec.plots.PlotUnavailable`), into a path
    :func:`check_output_path` refuses, or in a format matplotlib cannot write alone (a
    suffix such as ``.txt``): a run's report must not be lost to a typo in a path."""
    from migcodec.plots import plot_format, pyplot

    pyplot()
    check_output_path(path, "--plot")
    try:
        plot_format(path)
    except ValueError as exc:
        raise CommandLineError(f"--plot {exc}") from None


def draw_after_report(draw: Callable[..., object], *what: object, path: str) -> None:
    """Draw ``--plot`` once the report is printed: a failure to write it (a full disk) is
    one line, and the report is already out."""
    try:
        draw(*what, path)
    except OSError as exc:
        raise CommandLineError(
            f"--plot {path}: cannot write it ({exc.strerror or exc}); the report above is complete"
        ) from exc


#: errors of a write to a device or file system that is full or failing
OUTPUT_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG)


def reported_by_main(exc: BaseException) -> bool:
    """Whether ``exc`` is one :func:`migcodec.cli.main` reports in its own words, which a
    command's own one-line handling must leave to it: stdout's reader gone (exit 141,
    silently), a write to a full or failing device without a file name (stdout's: exit
    1), a thread the process may not start (exit 1)."""
    if isinstance(exc, BrokenPipeError):
        return True
    if isinstance(exc, OSError):
        return exc.filename is None and exc.errno in OUTPUT_FULL
    return thread_refused(exc)


def silence_stdout() -> None:
    """Point stdout at ``/dev/null`` once its reader has gone, so that the interpreter's
    flush at exit does not fail a second time (and print a traceback-like message)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor: nothing flushes it at exit
        pass


def json_document(document: object, default: Callable[[object], object] | None = None) -> str:
    """``document`` as the one JSON document a ``--json`` option prints: strict JSON, so
    every parser reads it. A number that is not finite (a score against nothing, nan; a
    rate of a window that took no time, inf) is ``null``, where ``json.dumps`` would write
    the ``NaN`` and ``Infinity`` tokens strict parsers refuse. ``default`` converts what
    JSON has no type for, as ``json.dumps``'s does."""
    return json.dumps(_finite(document), indent=2, default=default, allow_nan=False)


def _finite(value: object) -> object:
    """``value`` with every float that is not finite (numpy's float64 is one) made
    ``None``."""
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
