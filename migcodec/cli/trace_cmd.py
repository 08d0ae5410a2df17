"""``migcodec trace``: make traces (synthetic or captured from a process) and summarise them."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from collections.abc import Iterable, Iterator

import numpy as np

from migcodec.cli import args as types
from migcodec.cli.args import CommandLineError, check_trace_named, json_document
from migcodec.codecs.bounded import run_bounded
from migcodec.datasets import TraceError, TraceReader, TraceWriter, Workload, get_workload
from migcodec.datasets.presets import workload_names
from migcodec.datasets.qemu_stream import DEFAULT_MAX_WINDOWS, QemuStreamTooManyWindows
from migcodec.datasets.trace import TraceExists, TraceIncomplete, TraceWriteInterrupted
from migcodec.datasets.trace.reader import TraceInfo
from migcodec.datasets.window import Window
from migcodec.datasets.workload import WorkloadSpec
from migcodec.wire.errors import one_line, peer_text


def _command(args: argparse.Namespace) -> str:
    """The command line that recreates this trace, rebuilt from the parsed options (so it
    is exact also when ``main`` is called with an argument list instead of ``sys.argv``)."""
    words = ["migcodec", "trace", args.trace_command]
    for key, value in vars(args).items():
        # unset options and flags are left out; identity, as 0 == False and 0 is a value
        if key in ("func", "command", "trace_command", "trace") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if key == "address_range":
            value = "{:x}-{:x}".format(*value)  # as typed, not as a tuple
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # a rate or a length read from 200MB/s or 100: no ".0"
        words += [flag] if value is True else [flag, str(value)]
    return shlex.join(words)


def _check_synth_memory(args: argparse.Namespace, spec: WorkloadSpec) -> None:
    """Refuse a workload whose memory this machine cannot hold, before allocating it (as
    ``migrate`` refuses a ``--memory`` that large): numpy would refuse an impossible size
    with a traceback, and take a merely too large one, for the kernel to kill it later.

    The workload holds its memory (a page each; twice that while initial contents other
    than plain ones are generated and copied in) and a few 8-byte numbers per page (page
    ranks, sampling keys), and one window at a time: its pages, their previous contents
    and their encoding."""
    from migcodec.engine.guest_memory import check_available
    from migcodec.units import format_size

    dirty = max(spec.dirty_pages(p) for p in spec.phases)
    copies = 1 if spec.initial in ("zero", "ones", "seq", "random", "text") else 2
    need = spec.n_pages * (copies * spec.page_size + 64) + 4 * dirty * spec.page_size
    given = f"--pages {spec.n_pages}" if args.pages else f"the workload's {spec.n_pages} pages"
    memory = format_size(spec.n_pages * spec.page_size)
    what = f"{given} (the workload's memory, {memory}, and windows of up to {dirty} dirty pages)"
    check_available(need, what, "use a smaller --pages")  # a ValueError: one line from _run


def _check_dirty_rate(args: argparse.Namespace, spec) -> None:
    """Refuse a ``--dirty-rate`` that dirties more pages a window than the memory holds, or
    less than one: the windows were capped at the memory, or rounded up to a page, and the
    trace said neither (its manifest kept the rate asked for)."""
    from migcodec.units import counted, format_size

    def format_rate(rate: float) -> str:
        # under a byte a second (windows of hours), in digits: rounded, it read "0B/s"
        return f"{rate:.3g}B/s" if rate < 1 else format_size(rate).replace(" ", "") + "/s"

    per_window = args.dirty_rate * spec.window_s / spec.page_size
    fractions = [p.dirty_fraction for p in spec.phases]
    most, least = per_window * max(fractions), per_window * min(fractions)
    window = f"{spec.window_s * 1000:g} ms windows"
    top = spec.n_pages * spec.page_size / spec.window_s / max(fractions)
    low = spec.page_size / spec.window_s / min(fractions)
    if top < low:  # the phases' dirty fractions are too far apart for these windows
        raise ValueError(
            f"no --dirty-rate dirties at least a page in every one of the {window} and at "
            f"most the memory's {counted(spec.n_pages, 'page')} in each (the workload's "
            f"phases dirty at {min(fractions):g} to {max(fractions):g} times the rate); give "
            "more --pages"
        )
    if most > spec.n_pages:
        raise ValueError(
            f"--dirty-rate {format_rate(args.dirty_rate)} dirties "
            # a count of 300 digits (--dirty-rate 1e308) in exponent form
            f"{f'{most:.0f}' if most < 1e15 else f'{most:.3g}'} pages in some of "
            f"the {window}, more than the memory's {spec.n_pages} pages, and a window dirties "
            f"each page at most once; give at most {format_rate(top)}, or more --pages"
        )
    if least < 1.0:
        raise ValueError(
            f"--dirty-rate {format_rate(args.dirty_rate)} dirties less than a page in some of "
            f"the {window}; give at least {format_rate(low)}, or longer --window-ms"
        )


def synth(args: argparse.Namespace) -> int:
    if args.dirty_rate is not None and args.dirty_rate <= 0:  # else 1 page a window, silently
        raise ValueError(
            "--dirty-rate 0 dirties no page, and a trace's windows hold the pages dirtied; "
            "give a positive rate (e.g. 200MB/s) or --dirty-pages N"
        )
    spec = get_workload(
        args.workload,
        n_pages=args.pages,
        n_windows=args.windows,
        seed=args.seed,
        pages_per_window=args.dirty_pages,
        dirty_bytes_per_s=args.dirty_rate,
        window_s=args.window_ms / 1000 if args.window_ms else None,
    )
    if args.dirty_pages is not None and args.dirty_pages > spec.n_pages:  # else capped, silently
        raise ValueError(
            f"--dirty-pages {args.dirty_pages} is more than the memory's {spec.n_pages} pages, "
            f"and a window dirties each page at most once; give at most {spec.n_pages}"
        )
    if args.dirty_rate is not None:
        _check_dirty_rate(args, spec)
    _check_synth_memory(args, spec)
    try:
        workload = Workload(spec)
    except MemoryError:  # where the machine does not say how much it has
        raise ValueError(
            f"cannot allocate the workload's memory of {spec.n_pages} pages; use a smaller --pages"
        ) from None
    t0 = time.perf_counter()
    with TraceWriter(
        args.out,
        memory_pages=spec.n_pages,
        page_size=spec.page_size,
        window_s=spec.window_s,
        source=f"synth:{spec.name} seed={spec.seed}",
        command=_command(args),
        codec=args.codec,
        overwrite=args.force,
        meta={"workload": spec.name, "description": spec.description, "seed": spec.seed},
        expected_windows=spec.n_windows,
        staged=True,  # made again at will: a trace in part is worth nothing
    ) as writer:
        n = writer.write_all(workload)
    info = TraceReader(args.out).info()
    print(
        f"{args.out}: {n} windows of workload {spec.name!r} over {spec.n_pages} pages "
        f"({', '.join(f'{p.name} x{p.windows}' for p in spec.phases)}); "
        f"{info.totals['raw_bytes'] / 2**20:.0f} MiB of pages stored in "
        f"{info.totals['stored_bytes'] / 2**20:.0f} MiB, {time.perf_counter() - t0:.1f} s"
    )
    return 0


def _summarized(args: argparse.Namespace, codecs: list[str]):
    """The trace ``trace info`` reads, its phases' summaries, and per window its true count
    of dirtied pages and (where recorded) its measured length."""
    from migcodec.datasets.summary import summarize

    reader = TraceReader(args.trace, allow_incomplete=args.allow_incomplete)
    true_counts: list[int] = []  # dirtied pages per window, filled as summarize reads them
    lengths: list[float] = []  # the windows' measured durations, where they were recorded

    def counted(windows: Iterable[Window]) -> Iterator[Window]:
        for w in windows:
            true_counts.append(w.n_pages if w.dirty_pages is None else w.dirty_pages)
            if w.duration_s is not None:
                lengths.append(w.duration_s)
            yield w

    phases = summarize(counted(reader), codecs=codecs, sample_pages=args.sample)
    return reader, phases, true_counts, lengths


def _codec_text(meta: TraceInfo) -> str:
    """``zstd level=1``: the codec that stores a trace's pages, as a person writes it."""
    config = meta.codec if isinstance(meta.codec, dict) else {"name": meta.codec}
    words = [str(config.get("name", "?"))]
    words += [f"{key}={value}" for key, value in sorted(config.items()) if key != "name"]
    return one_line(" ".join(words))


def _seconds(value: float) -> str:
    """A window's length as ``trace info`` shows it: milliseconds, or three figures where
    that would run long (a file's 1e308 s was printed as a number of 309 digits)."""
    return f"{value:.3f}" if value < 1e6 else f"{value:.3g}"


def _median(values: list[float]) -> float:
    """The median of finite ``values``, halved before the middle two are added: their
    sum may pass a float's range (two windows of 1e308 s had a median of inf)."""
    return float(np.median(np.asarray(values, dtype=float) / 2)) * 2


def _ratio_pages(sample: int, least: int, most: int) -> str:
    """Which of a window's stored pages its ratios come from (``summarize`` encodes at most
    ``sample`` of them): a trace of 64 stored pages per window was said to be sampled from
    256."""
    if most <= sample:
        return "of every stored page"
    if least >= sample:
        return f"sampled from {sample} pages per window"
    return f"sampled from up to {sample} stored pages per window"


def info(args: argparse.Namespace) -> int:
    check_trace_named(args.trace)
    codecs = types.codec_names(args.codecs)
    # read on a bounded unit, and printed here: a codec call that never returns (the
    # trace's own codec's, or one of --codecs) ends the command naming it, and a unit
    # left inside one prints nothing if it ever returns
    reader, phases, true_counts, lengths = run_bounded(
        _summarized, args, codecs, instead="leave it out of --codecs"
    )
    meta = reader.info()
    per_window = reader.pages_per_window()
    dirty = np.asarray(true_counts, dtype=np.int64)
    sampled = int(np.count_nonzero(dirty != per_window))
    if args.json:
        doc = {"trace": meta.__dict__ | {"phases": [p.__dict__ for p in meta.phases]}}
        doc["summary"] = [p.as_dict() for p in phases]
        doc["dirty_pages_per_window"] = dirty.tolist()
        doc["window_seconds"] = lengths
        doc["stored_pages_per_window"] = per_window.tolist()
        print(json_document(doc, default=str))
        return 0
    lo, hi = (int(per_window.min()), int(per_window.max())) if per_window.size else (0, 0)
    # text from the file is shown quoted and escaped: it is the trace's, not ours
    print(f"trace {meta.path} (format v{meta.version}, pages stored with {_codec_text(meta)})")
    print(f"  source   {peer_text(meta.source)}")
    print(f"  command  {peer_text(meta.command)}")
    # a writer killed, or stopped by a full disk, never wrote why: "None" said nothing
    ended = (
        "no reason recorded: its writer has not closed it (it is still writing, or it "
        "stopped before it could: killed, or its disk full)"
        if meta.end_reason is None
        else peer_text(str(meta.end_reason))
    )
    print(f"  created  {peer_text(meta.created)}; complete: {meta.complete} ({ended})")
    if "method" in meta.meta:
        print(f"  capture  {peer_text(str(meta.meta.get('method_note', meta.meta['method'])))}")
    print(
        f"  {meta.windows} windows of {meta.window_s} s over {meta.memory_pages} pages of "
        f"{meta.page_size} B; pages per window min {lo}, "
        f"mean {per_window.mean() if per_window.size else 0:.0f}, max {hi}"
    )
    if lengths:
        # a capture that takes longer than its interval stretches its windows past it
        print(
            f"  window lengths (measured): min {_seconds(min(lengths))} s, median "
            f"{_seconds(_median(lengths))} s, max {_seconds(max(lengths))} s"
        )
    if sampled:
        print(
            f"  dirty pages per window (true count; {sampled} windows store a uniform "
            f"sample): min {int(dirty.min())}, median {float(np.median(dirty)):.0f}, "
            f"mean {dirty.mean():.0f}, max {int(dirty.max())}; {int(dirty.sum())} dirty, "
            f"{int(per_window.sum())} stored"
        )
    print(
        f"  stored {meta.totals['stored_bytes'] / 2**20:.1f} MiB for "
        f"{meta.totals['raw_bytes'] / 2**20:.1f} MiB of dirty pages (+ previous contents)"
    )
    print(f"  per phase (ratios {_ratio_pages(args.sample, lo, hi)}, 64-page batches):")
    head = f"  {'phase':<12} {'windows':>7} {'pages/win':>9} {'zero':>6} {'words chg':>9}"
    print(head + "".join(f" {c:>8}" for c in codecs))
    for p in phases:
        changed = p.changed_word_fraction
        row = (
            f"  {one_line(p.name or '-'):<12} {p.windows:>7} {p.pages_per_window:>9.0f} "
            f"{p.zero_fraction:>6.1%} {'-' if changed is None else f'{changed:.2%}':>9}"
        )
        ratios = [p.ratio(c) for c in codecs]
        print(row + "".join(f" {'-' if r is None else f'{r:.2f}':>8}" for r in ratios))
    return 0


def capture(args: argparse.Namespace) -> int:
    from migcodec.datasets.capture import (
        CaptureError,
        MappingFilter,
        NotAProcess,
        capture_to_trace,
    )

    select = MappingFilter(
        include_file=args.include_file,
        include_shared=args.include_shared,
        address_range=args.address_range,
    )
    try:
        result = capture_to_trace(
            args.pid,
            args.out,
            args.windows,
            args.interval / 1000,
            select=select,
            method=args.method,
            codec=args.codec,
            progress=not args.quiet,
            overwrite=args.force,
            command=_command(args),
            max_pages=args.max_pages,
            seed=args.seed,
        )
    except CaptureError as exc:
        print(f"migcodec trace capture: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, NotAProcess) else 1  # a pid of no process: input
    kept = ""
    if result.sampled_windows:
        kept = (
            f" ({result.stored_pages} stored: {result.sampled_windows} windows sampled "
            f"down to {args.max_pages} page{'' if args.max_pages == 1 else 's'})"
        )
    print(
        f"{result.path}: {result.windows} windows, {result.dirty_pages} dirty pages{kept}; "
        f"method: {result.method_note}; {result.end_reason}"
    )
    return 0


def import_qemu(args: argparse.Namespace) -> int:
    """``trace import-qemu``: QEMU's own migration stream as a trace, one window per
    pre-copy iteration (see :mod:`migcodec.datasets.qemu_stream`)."""
    from migcodec.datasets.qemu_stream import import_qemu_stream, read_sync_points

    # an empty name is refused, not taken as no file: without sync points the windows are
    # passes of QEMU's RAM scan, not its iterations
    if not args.stream.strip():
        raise ValueError(
            f"the stream {args.stream!r} names no file; give the file QEMU saved the stream "
            'to (migrate "exec:cat > FILE")'
        )
    if args.sync_points is not None and not args.sync_points.strip():
        raise ValueError(
            f"--sync-points {args.sync_points!r} names no file; give the JSON file of sync "
            "points, or leave --sync-points out"
        )
    points = read_sync_points(args.sync_points) if args.sync_points else None
    words = ["migcodec", "trace", "import-qemu", args.stream, "--out", args.out]
    words += ["--sync-points", args.sync_points] if args.sync_points else []
    words += ["--codec", args.codec] + (["--force"] if args.force else [])
    if args.max_windows != DEFAULT_MAX_WINDOWS:
        words += ["--max-windows", str(args.max_windows)]
    try:
        stats, info = import_qemu_stream(
            args.stream,
            args.out,
            sync_points=points,
            codec=args.codec,
            overwrite=args.force,
            command=shlex.join(words),
            max_windows=args.max_windows,
        )
    except QemuStreamTooManyWindows as exc:
        raise QemuStreamTooManyWindows(f"{exc} (--max-windows N)") from None
    except TraceError:  # TraceExists is an OSError too: _run words it for this command line
        raise
    except OSError as exc:  # the stream or the output directory
        raise ValueError(f"{exc.filename or args.stream}: {exc.strerror or exc}") from None
    cut = "QEMU's dirty-bitmap syncs" if points is not None else "passes of QEMU's RAM scan"
    print(
        f"{args.out}: {stats.windows} windows ({cut}) from "
        f"{one_line(info.machine or 'a QEMU VM')} with "
        f"{info.ram_bytes >> 20} MiB of RAM in {len(info.blocks)} blocks; {stats.pages} "
        f"pages sent: {stats.normal} whole, {stats.zero} zero, {stats.xbzrle} XBZRLE "
        f"({stats.xbzrle_mismatches} re-encoded differently by migcodec); "
        f"{stats.record_bytes} bytes of page records in {stats.sections} RAM sections"
    )
    return 0


_HEX = re.compile(r"(0[xX])?[0-9a-fA-F]+")


def address_range(text: str) -> tuple[int, int]:
    """``--address-range``: ``START-END`` in hex (``0x`` optional), START below END, both
    within the 64-bit address space."""
    example = "e.g. 7f0000000000-7f0001000000"
    lo, dash, hi = text.partition("-")
    try:
        # hex digits alone: int() also takes underscores ("1_000" was 0x1000) and other
        # scripts' digits
        if not dash or not all(_HEX.fullmatch(x.strip()) for x in (lo, hi)):
            raise ValueError
        start, end = (int(x.strip(), 16) for x in (lo, hi))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"cannot read {text!r}: write hex START-END, {example}"
        ) from None
    if start < 0 or end > 1 << 64:
        raise argparse.ArgumentTypeError(
            f"{text!r} lies beyond the 64-bit address space; write hex START-END within "
            f"0-{(1 << 64):x}, {example}"
        )
    if start >= end:
        raise argparse.ArgumentTypeError(
            f"{text!r} is empty: START must be below END; write hex START-END, {example}"
        )
    return start, end


def _run(func):
    """A missing, damaged or unreadable trace, or a value a workload cannot use, is one line
    and exit status 2: the input must change (as for every migcodec command)."""

    def wrapped(args: argparse.Namespace) -> int:
        out = getattr(args, "out", None)
        if out is not None and not out.strip():  # " " made a directory named " "
            raise CommandLineError(
                f"--out {out!r} names no directory; give the trace's directory, e.g. traces/run1"
            )
        try:
            return func(args)
        except (TraceError, ValueError) as exc:
            text = str(exc)
            if isinstance(exc, TraceExists) and exc.replaceable:  # the API says overwrite=True
                text = (
                    f"{exc.path} already holds a trace; choose another --out or pass --force to "
                    "replace it"
                )
            elif isinstance(exc, TraceIncomplete) and args.trace_command == "info":
                text = (
                    f"{exc.path} was not closed by its writer ({exc.windows} windows indexed); "
                    "pass --allow-incomplete to read them"
                )
            print(f"migcodec trace {args.trace_command}: {one_line(text)}", file=sys.stderr)
            return 1 if isinstance(exc, TraceWriteInterrupted) else 2  # see args.py

    return wrapped


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="make, capture and summarise dirty-page traces")
    tsub = p.add_subparsers(dest="trace_command", required=True)

    s = tsub.add_parser("synth", help="write a trace of a synthetic dirtying workload")
    s.add_argument("--workload", required=True, choices=workload_names())
    s.add_argument(
        "--pages",
        type=types.positive_int,
        metavar="N",
        help="guest memory in 4 KiB pages (default: the workload's, 16384 for most)",
    )
    s.add_argument(
        "--windows",
        type=types.positive_int,
        metavar="N",
        help="windows (phases keep their share; default: the workload's)",
    )
    s.add_argument("--seed", type=types.seed, default=0, metavar="N", help="the workload's seed")
    rate = s.add_mutually_exclusive_group()
    rate.add_argument(
        "--dirty-pages",
        type=types.positive_int,
        metavar="N",
        help="pages dirtied per window (default: 1/16 of memory)",
    )
    rate.add_argument(
        "--dirty-rate",
        type=types.rate,
        metavar="RATE",
        help="bytes/s dirtied, e.g. 200MB/s (instead of --dirty-pages)",
    )
    s.add_argument(
        "--window-ms",
        type=types.milliseconds,
        metavar="MS",
        help="window length (default: 100 ms)",
    )
    s.add_argument("--codec", default="zstd", help="codec that stores the pages")
    s.add_argument("--force", action="store_true", help="replace an existing trace")
    s.add_argument("--out", required=True, help="trace directory")
    s.set_defaults(func=_run(synth))

    i = tsub.add_parser("info", help="summarise a trace per phase")
    i.add_argument("trace")
    i.add_argument("--codecs", default="lz4,zstd,zlib-ng", help="codecs for sampled ratios")
    i.add_argument(
        "--sample",
        type=types.positive_int,
        default=256,
        metavar="N",
        help="pages sampled per window",
    )
    i.add_argument("--allow-incomplete", action="store_true", help="read an unclosed trace")
    i.add_argument("--json", action="store_true", help="print one JSON document")
    i.set_defaults(func=_run(info))

    c = tsub.add_parser("capture", help="capture dirty pages of a live process (root)")
    c.add_argument("--pid", type=types.positive_int, required=True, help="process to watch")
    c.add_argument("--windows", type=types.positive_int, required=True, help="windows to record")
    c.add_argument(
        "--interval", type=types.milliseconds, required=True, metavar="MS", help="window length"
    )
    c.add_argument("--out", required=True, help="trace directory")
    c.add_argument(
        "--method",
        default="auto",
        choices=["auto", "soft-dirty", "snapshot-diff"],
        help="how dirty pages are found (auto: soft-dirty bits where the kernel has them)",
    )
    c.add_argument("--include-file", action="store_true", help="also writable file-backed mappings")
    c.add_argument("--include-shared", action="store_true", help="also writable shared mappings")
    c.add_argument(
        "--address-range",
        type=address_range,
        metavar="START-END",
        help="hex START-END, e.g. 7f0000000000-7f0001000000",
    )
    c.add_argument(
        "--max-pages",
        type=types.positive_int,
        metavar="K",
        help="store at most K pages per window: a larger window keeps a uniform random "
        "sample of K and records its true dirty count",
    )
    c.add_argument(
        "--seed", type=types.seed, default=0, metavar="N", help="seed of the --max-pages samples"
    )
    c.add_argument("--codec", default="zstd", help="codec that stores the pages")
    c.add_argument("--force", action="store_true", help="replace an existing trace")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=_run(capture))

    q = tsub.add_parser(
        "import-qemu",
        help='a QEMU migration stream (migrate "exec:cat > FILE") as a trace, one window '
        "per pre-copy iteration",
    )
    q.add_argument("stream", help="the stream file (plain, gzip or xz)")
    q.add_argument("--out", required=True, help="trace directory")
    q.add_argument(
        "--sync-points",
        help="JSON: per dirty-bitmap sync, the RAM sections written before it (as "
        "corpus/qemu_stream.py records); windows are then QEMU's iterations, else passes "
        "of its RAM scan",
    )
    q.add_argument("--codec", default="zstd", help="codec that stores the pages")
    q.add_argument(
        "--max-windows",
        type=types.positive_int,
        default=DEFAULT_MAX_WINDOWS,
        metavar="N",
        help="refuse a stream of more than N windows (default: %(default)s; a QEMU "
        "migration makes a few or tens, a stream of many thousands never converged)",
    )
    q.add_argument("--force", action="store_true", help="replace an existing trace")
    q.set_defaults(func=_run(import_qemu))
