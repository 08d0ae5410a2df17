"""The ``migcodec`` command. Each subcommand lives in its own module and registers itself
through :data:`COMMANDS`; adding one touches one new module and one line here.

Whatever a user types ends in one line and an exit status, never a traceback: the statuses
are listed in :mod:`migcodec.cli.args`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import signal
import sys
import threading

from migcodec.cli.args import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    OUTPUT_FULL,
    CommandLineError,
    Parser,
)
from migcodec.cli.args import silence_stdout as _silence_stdout
from migcodec.codecs import CodecError
from migcodec.codecs.stuck import left_running_note
from migcodec.interrupts import Terminated, raise_interrupted, raise_terminated
from migcodec.ram import thread_refused

#: modules that each define ``register(subparsers)``
COMMANDS = [
    "migcodec.cli.codecs_cmd",
    "migcodec.cli.bench_cmd",
    "migcodec.cli.migrate_cmd",
    "migcodec.cli.trace_cmd",
    "migcodec.cli.evaluate_cmd",
]


def version_text() -> str:
    """The package's version and the versions of the formats it writes and reads: what a
    user compares between two hosts before a migration, and what a report should name."""
    from migcodec import __version__
    from migcodec.datasets.trace import format as trace_format
    from migcodec.wire import format as wire_format

    def listed(versions: tuple[int, ...]) -> str:
        return ", ".join(str(v) for v in versions)

    # a stream's version follows its codecs (VERSION_PACKAGES once a third party's is in
    # its table), so every one spoken is listed; a trace is written at the newest
    return (
        f"migcodec {__version__} (stream formats {listed(wire_format.VERSIONS)}; trace format "
        f"{trace_format.VERSION}, reads {listed(trace_format.READ_VERSIONS)})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="migcodec", description="Codecs and codec selection for live migration of memory."
    )
    parser.add_argument(
        "--version", action="version", version=version_text(), help="print the version and exit"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


#: what each command takes smaller to need less memory (its own options, not another's)
_SMALLER = {
    "bench": "fewer --pages",
    "migrate": "a smaller --memory",
    "send": "a smaller --memory",
    "receive": "a smaller guest (the source's --memory)",
    "evaluate": "fewer --pages (with --workload) or a smaller --batch-pages",
    "trace synth": "fewer --pages",
    "trace capture": "a smaller --max-pages",
    "trace info": "a smaller --sample",
    "trace import-qemu": "a stream of a smaller guest",
}


#: commands that start a thread per --workers (evaluate's is the objective's worker count)
_WORKER_THREADS = ("bench", "migrate", "send")


def _name(args: argparse.Namespace) -> str:
    """``migrate``, ``trace synth``: how messages name the command that ran."""
    return " ".join(filter(None, [args.command, getattr(args, "trace_command", None)]))


def _names_as_given() -> None:
    """Write file names to stdout and stderr as the file system holds them: a name that is
    no UTF-8 decodes to surrogates, which a UTF-8 locale's strict encoder refuses (a trace
    at such a path was written, then its summary line failed)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="surrogateescape")


def main(argv: list[str] | None = None) -> int:
    _names_as_given()
    args = build_parser().parse_args(argv)
    # SIGTERM ends a command as Ctrl-C does (its cleanups run, one line says so), not with
    # the default's silent exit that leaves a trace unclosed; Ctrl-C's handler raises as
    # Python's does, remembering that it did (a codec's own KeyboardInterrupt is its
    # failure: migcodec.interrupts.from_signal). The handlers are the caller's again on
    # return (tests call main in-process)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, raise_terminated)}
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, raise_interrupted)
    try:
        return _run(args)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(args: argparse.Namespace) -> int:
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed stdout shows up here, not at interpreter exit
        return code
    except CodecError as exc:
        print(f"migcodec {_name(args)}: {exc}", file=sys.stderr)
        return 2
    except CommandLineError as exc:
        print(f"migcodec {_name(args)}: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"migcodec {_name(args)}: terminated{left_running_note()}", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"migcodec {_name(args)}: interrupted{left_running_note()}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError as exc:
        # the checks before each large allocation read the machine's free memory; a limit
        # on this process (ulimit -v, a container's) can still refuse one: said in one line
        detail = f" ({exc})" if str(exc) else ""
        smaller = _SMALLER.get(_name(args), "smaller sizes")
        print(
            f"migcodec {_name(args)}: out of memory{detail}: this command needs more memory "
            f"than this process may use; give it {smaller} or raise the process's memory "
            "limit",
            file=sys.stderr,
        )
        return 1
    except RuntimeError as exc:
        if not thread_refused(exc):
            raise
        # a thread's stack is memory too: a limit on this process refuses one as it would
        # a large buffer; the commands whose threads follow --workers say so
        fewer = "give it fewer --workers, or " if _name(args) in _WORKER_THREADS else ""
        print(
            f"migcodec {_name(args)}: cannot start another thread ({exc}): this process may "
            f"not use that many threads or that much memory; {fewer}raise the process's "
            "limits",
            file=sys.stderr,
        )
        return 1
    except BrokenPipeError:
        # the reader of stdout has gone (`migcodec codecs --json | head`): stop quietly, as
        # a Unix tool killed by SIGPIPE does
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            # a path with a name longer than the file system takes fails wherever it is
            # first looked at (pathlib's exists() and is_dir() raise it), for every path
            # option alike
            print(
                f"migcodec {_name(args)}: {exc.filename}: a name in this path is longer "
                "than the file system allows; give a shorter path",
                file=sys.stderr,
            )
            return 2
        if exc.filename is None and exc.errno in OUTPUT_FULL:
            # a write without a file name: most often the report's, to a standard output
            # on a full disk (or /dev/full); said in one line, and stdout silenced so that
            # the flush at exit does not fail again
            _silence_stdout()
            print(
                f"migcodec {_name(args)}: cannot write ({exc.strerror}): standard output, or "
                "a file this command writes, is on a full or failing device; free space "
                "there, or write elsewhere",
                file=sys.stderr,
            )
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
