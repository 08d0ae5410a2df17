"""``migcodec evaluate``: score codec-selection policies on traces, exactly.

Every arm runs on every window once (full information; timings are medians of repeats),
the table is cached beside the trace, and each policy is replayed against it seeing only
the outcome of the arm it chose. Reports each policy against the per-window oracle and the
best fixed arm, per trace and link, and over a whole corpus; ``--grid`` ranks a grid of
one policy's configurations instead, each chosen on the traces it is not scored on.

Traces are paths or fsspec URLs. ``--scheduler`` runs the table measurements and replays
as tasks on a Dask cluster (:mod:`migcodec.selector.evaluation.cluster`); the document
printed is the same as in process.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from migcodec.cli import args as types
from migcodec.cli.args import (
    CommandLineError,
    Given,
    Joined,
    check_output_path,
    check_plot_path,
    check_trace_named,
    draw_after_report,
    given,
    json_document,
    reported_by_main,
)
from migcodec.codecs import CodecFailed, CodecStuck, PageSizeUnsupported
from migcodec.codecs.bounded import run_bounded
from migcodec.datasets.trace import TraceError, TraceReader
from migcodec.datasets.trace.format import (
    MANIFEST,
    TABLE_CACHE_PREFIX,
    WRITTEN_BY,
    is_trace_file,
)
from migcodec.files import cannot_create_in
from migcodec.selector import (
    DEFAULT_POLICIES,
    PolicyError,
    make_objective,
    parse_arms,
    parse_policy,
)
from migcodec.selector.adaptive_chooser import UNLIMITED_LINK
from migcodec.selector.costmodel import FEATURES_LABEL, CostModel
from migcodec.selector.evaluation import (
    build_table,
    check_windows,
    evaluate,
    phase_generators,
    read_trace,
    workload_windows,
)
from migcodec.selector.evaluation.cluster import TASK_WINDOWS
from migcodec.selector.evaluation.grid import (
    MAX_GRID_CONFIGS,
    leave_one_trace_out,
    load_grid,
    rank_configs,
    score_grid,
)
from migcodec.selector.evaluation.replay import Evaluation
from migcodec.selector.evaluation.table import (
    LEAVE_ARMS_OUT,
    Table,
    TableError,
    evaluation_cost_model,
    table_key,
)
from migcodec.selector.evaluation.windows import WindowSourceError, trace_identity
from migcodec.selector.objectives import Objective
from migcodec.selector.spec import parse_spec
from migcodec.storage import LocalLocation, Location, is_url, location
from migcodec.units import parse_rate

if TYPE_CHECKING:
    from migcodec.selector.evaluation.cluster import Cluster, TraceSource


@dataclass
class Source:
    """Where one table's windows come from; ``trace`` is the trace directory (``None``
    for a workload), which a cluster's workers open."""

    name: str
    identity: str
    windows: object  # a callable returning an iterator of windows
    trace: Location | None = None  # where its table is cached beside, too


@dataclass
class Measured:
    """A source's table, whether it came from the cache, and the cache file."""

    source: Source
    table: Table
    cached: bool
    path: Location | None


@dataclass
class Result:
    source: Source
    link: str
    table: Table
    cached: bool
    path: Location | None
    evaluation: Evaluation


def _sources(args: argparse.Namespace) -> list[Source]:
    sources = sum(bool(x) for x in (args.trace, args.corpus, args.workload))
    if sources != 1:
        raise CommandLineError(
            "give TRACE directories, --corpus DIR or --workload NAME (exactly one of them)"
        )
    if args.workload:
        if given(args, "phase_windows") and phase_generators(args.workload) is None:
            from migcodec.datasets.presets import workload_names

            what = "one page generator"
            if args.workload in workload_names():
                what = "a preset, whose phases are its own"
            raise CommandLineError(
                "--phase-windows applies to phases, a comma-separated --workload "
                f"(zero,memcached,text,random); {args.workload!r} is {what}: drop "
                "--phase-windows, or name several page generators"
            )
        phases = phase_generators(args.workload)
        if phases is not None and args.windows < (len(phases) - 1) * args.phase_windows + 1:
            # its windows were the first phases' alone, reported under every phase's name
            reached = -(-args.windows // args.phase_windows)
            raise CommandLineError(
                f"--workload {args.workload!r} names {len(phases)} phases of "
                f"--phase-windows {args.phase_windows} windows each, and --windows "
                f"{args.windows} reaches {reached} of them; give --windows "
                f"{(len(phases) - 1) * args.phase_windows + 1} or more, or fewer "
                "--phase-windows"
            )
        _check_workload_memory(args)
        ident = f"workload:{args.workload}:{args.windows}:{args.pages}:{args.seed}"
        ident += f":{args.phase_windows}"

        def windows():
            return workload_windows(
                args.workload, args.windows, args.pages, args.seed, args.phase_windows
            )

        return [Source(args.workload, ident, windows, None)]
    if args.corpus:
        root = location(args.corpus)
        if not root.is_dir():
            raise CommandLineError(
                f"corpus {root} {_not_a_directory(root)}; give a directory of traces, each "
                f"written by {WRITTEN_BY}"
            )
        traces = _traces_in(root)
        if (root / MANIFEST).exists():
            traces.insert(0, root)
        if not traces:
            raise CommandLineError(
                f"corpus {root} holds no trace (no */{MANIFEST}); make traces with {WRITTEN_BY}"
            )
    else:
        traces = [location(t) for t in args.trace]
    sources = []
    for trace in traces:
        _check_trace(trace)
        sources.append(
            Source(
                trace.name or str(trace),
                f"trace:{trace_identity(trace)}",
                lambda trace=trace: read_trace(trace),
                trace,
            )
        )
    # one trace named twice (``t t``, ``t ./t``) would be measured twice and counted as two
    # traces in the overall rows, as a link given twice would
    seen: dict[str, Source] = {}
    for source in sources:
        first = seen.get(source.identity)
        if first is not None:
            # a corpus's two links to one trace: the user named neither
            where = (
                f"{first.trace} and {source.trace} are the same trace"
                if str(first.trace) != str(source.trace)
                else f"trace {source.trace} is named more than once"
            )
            fix = (
                f"remove one of them from {args.corpus}" if args.corpus else "name each trace once"
            )
            raise CommandLineError(f"{where}; {fix}")
        seen[source.identity] = source
    return sources


def _traces_in(root: Location) -> list[Location]:
    """The traces one level below ``root`` (every ``*/manifest.json``), by path.

    A local directory is asked for each entry's manifest: a glob passes over a directory
    this user may not search, and a corpus was evaluated without the trace in it, as if it
    held no more; asked, such a directory is named (:class:`~migcodec.storage.NotPermitted`).
    Elsewhere one listing is made, not a request per entry."""
    if root.local_path is not None:
        return sorted((d for d in root.glob("*") if (d / MANIFEST).exists()), key=str)
    return sorted((p.parent for p in root.glob(f"*/{MANIFEST}")), key=str)


def _not_a_directory(place: Location) -> str:
    """Why ``place``, which is no directory, is not one: it is missing, or something else."""
    return "is not a directory" if place.exists() else "does not exist"


def _check_trace(trace: Location) -> None:
    """Refuse a TRACE that is no trace directory, naming what it is instead and what to
    give: a path that does not exist (it was "not a directory"), a file, a directory of
    traces, or any other directory, which read as one trace were "neither a trace directory
    nor a workload"."""
    if not trace.is_dir():
        raise CommandLineError(
            f"trace {trace} {_not_a_directory(trace)}; give a trace directory written by "
            f"{WRITTEN_BY}, or a workload as --workload NAME (e.g. --workload memcached)"
        )
    if (trace / MANIFEST).exists():
        return
    inner = _traces_in(trace)
    if inner:
        raise CommandLineError(
            f"trace {trace} is a directory of {len(inner)} traces, not a trace; pass --corpus "
            f"{trace} to evaluate every one, or give one of them (e.g. {inner[0]})"
        )
    raise CommandLineError(
        f"trace {trace} is a directory with no {MANIFEST}, so no trace (nor a directory of "
        f"them); give a trace directory written by {WRITTEN_BY}, or a workload as --workload "
        "NAME (e.g. --workload memcached)"
    )


def _check_input_file(path: str, option: str) -> None:
    """Refuse a local input that is not a regular file before it is read (a FIFO's open
    waits for a writer forever, a device never ends); a missing one says so when read."""
    from migcodec.files import check_regular_file

    if is_url(path):
        return
    try:
        check_regular_file(path, option, "give a file")
    except ValueError as exc:
        raise CommandLineError(str(exc)) from None


def _check_table_options(args: argparse.Namespace, several: bool) -> None:
    """Refuse, before any table is measured, a table cache that could not be used at the
    end: a directory given for a file, a file given for a directory, a file in a missing
    directory. A missing cache directory (``--table-dir``, or ``--table`` with several
    traces) is created when the first table is written into it, not before."""
    if args.table and not several:
        if is_url(args.table):
            return
        _check_not_a_trace_file(Path(args.table))
        # and where a link leads: --rebuild wrote the table through a link to a manifest
        _check_not_a_trace_file(Path(os.path.realpath(args.table)))
        if Path(args.table).exists():
            if Path(args.table).is_dir():
                raise CommandLineError(
                    f"--table {args.table} is a directory; give a file name (e.g. t.npz), "
                    "or --table-dir DIR"
                )
            _check_input_file(args.table, "--table")
            if args.rebuild:
                _check_replaceable_table(Path(args.table))
        else:
            check_output_path(args.table, "--table")
        return
    option, directory = ("--table", args.table) if args.table else ("--table-dir", args.table_dir)
    if directory and not is_url(directory):
        target = Path(directory)
        if target.exists() and not target.is_dir():
            raise CommandLineError(
                f"{option} {directory} is not a directory; give a directory for the cached "
                "tables (a missing one is created)"
            )


def _check_not_a_trace_file(table: Path) -> None:
    """Refuse a ``--table`` that is a file of a trace (its manifest, index or a chunk):
    read as a table it was "damaged; delete it to rebuild", and ``--rebuild`` wrote the
    table over it, leaving the trace unreadable."""
    if is_trace_file(table.name) and (table.parent / MANIFEST).is_file():
        raise CommandLineError(
            f"--table {table} is a file of the trace in {table.parent}; give a file of its "
            f"own for the table, e.g. {table.parent / 'table.npz'}"
        )


#: how every file :meth:`Table.save` writes starts (a zip archive's first local header)
_ZIP_START = b"PK\x03\x04"


def _check_replaceable_table(table: Path) -> None:
    """Refuse ``--rebuild`` of a ``--table`` that is no table (not even a damaged one: it
    does not start as a zip archive): the table was written over whatever file it named,
    a saved migration stream as well as a table."""
    with open(table, "rb") as f:
        start = f.read(len(_ZIP_START))
    if start != _ZIP_START:
        raise CommandLineError(
            f"--table {table} holds something other than a table, which --rebuild would "
            "replace; give a file of its own for the table, or delete that file first"
        )


def _check_workload_memory(args: argparse.Namespace) -> None:
    """Refuse page generators' windows this machine cannot hold, before they are made (as
    ``migrate`` refuses a ``--memory`` that large): each window holds ``--pages`` pages and
    the window before's as its previous contents, and a preset's memory as well where it
    grows to hold them (``workload_windows``; a preset's own memory is small)."""
    from migcodec.datasets import get_workload
    from migcodec.datasets.pages import DEFAULT_PAGE_SIZE as PAGE
    from migcodec.datasets.presets import workload_names
    from migcodec.engine.guest_memory import GuestMemoryError, check_available
    from migcodec.units import format_size

    copies = 2
    if args.workload in workload_names():
        if args.pages <= get_workload(args.workload).n_pages:
            return
        copies = 3  # the memory grown to the window's size, the window, the one before
    window = format_size(args.pages * PAGE)
    what = f"--pages {args.pages} (windows of {window} and the window before's)"
    try:
        check_available(copies * args.pages * PAGE, what, "use a smaller --pages")
    except GuestMemoryError as exc:
        raise CommandLineError(str(exc)) from None


def _table_key(args: argparse.Namespace, source: Source, arms) -> str:
    """The cache key of ``source``'s table: its windows and every option that shaped it."""
    return table_key(source.identity, arms, args.repeats, args.batch_pages, args.sample_pages)


def _table_path(args: argparse.Namespace, source: Source, key: str, several: bool):
    """Where ``source``'s table, of cache key ``key``, is cached: ``--table`` (a file, or
    a directory with several sources), ``--table-dir``, else beside the trace (a workload's
    is not cached)."""
    if args.table and not several:
        return location(args.table)
    if args.table or args.table_dir:
        return location(args.table or args.table_dir) / (
            f"{TABLE_CACHE_PREFIX}{source.name}-{key}.npz"
        )
    if source.trace is not None:
        return source.trace / f"{TABLE_CACHE_PREFIX}{key}.npz"
    return None


def _measure(
    args: argparse.Namespace,
    sources: list[Source],
    arms,
    calibration: CostModel | None,
    cluster: Cluster | None,
) -> list[Measured]:
    """Every source's table: loaded from its cache, else measured (in process, or as
    tasks on ``cluster``) and cached."""
    several = len(sources) > 1
    keys = [_table_key(args, s, arms) for s in sources]
    paths = [_table_path(args, s, k, several) for s, k in zip(sources, keys, strict=True)]
    out: list[Measured | None] = [None] * len(sources)
    todo = []
    for i, (source, path) in enumerate(zip(sources, paths, strict=True)):
        if path is not None and path.exists() and not args.rebuild:
            table = Table.load(path)
            _check_table_key(path, table, keys[i], given=bool(args.table and not several))
            _verify_trace(source)
            out[i] = Measured(source, table, True, path)
        else:
            todo.append(i)
    for i in todo:  # before measuring: a cache found unwritable after it lost the work
        _check_cacheable(sources[i], paths[i])
    if cluster is not None and todo:
        from migcodec.selector.evaluation.cluster import TableSettings

        settings = TableSettings.of(
            arms,
            repeats=args.repeats,
            batch_pages=args.batch_pages,
            sample_pages=args.sample_pages,
        )
        cluster.check_workers(settings)
        built = cluster.build_tables(
            [_trace_source(sources[i]) for i in todo], settings, calibration, args.task_windows
        )
    else:
        built = [_build(args, sources[i], arms, calibration) for i in todo]
    for i, table in zip(todo, built, strict=True):
        table.meta["key"] = keys[i]  # what a later run's --table FILE is checked against
        if paths[i] is not None:
            try:
                table.save(paths[i])
            except OSError as exc:
                raise OSError(
                    f"cannot cache the table of {sources[i].name} at {paths[i]} ({exc}); "
                    "give a writable --table-dir DIR"
                ) from exc
        out[i] = Measured(sources[i], table, False, paths[i])
    return [m for m in out if m is not None]


def _check_cacheable(source: Source, path: Location | None) -> None:
    """Refuse a table cache (a local one) that could not be written once ``source``'s
    table is measured: a directory where the file goes, or a directory that cannot be
    made or written (found after measuring, a corpus's minutes of work were lost)."""
    if not isinstance(path, LocalLocation):
        return
    target = path.path
    problem = "a directory is there" if target.is_dir() else None
    if problem is None:
        existing = target.parent
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent  # made when the table is written
        problem = (
            f"{existing} is not a directory"
            if not existing.is_dir()
            else cannot_create_in(existing)
        )
    if problem is not None:
        raise CommandLineError(
            f"cannot cache the table of {source.name} at {target} ({problem}); give a "
            "writable --table-dir DIR"
        )


def _verify_trace(source: Source) -> None:
    """Refuse a cached table of a trace damaged since it was measured: the cache key has
    the trace's files' sizes and change stamps, which a byte changed in place (or a copy
    that keeps them) leaves alone, so every record is checked against its checksums
    (:meth:`TraceReader.verify`) before the table is trusted."""
    if source.trace is None:
        return
    try:
        with TraceReader(source.trace) as reader:
            reader.verify()
    except TraceError as exc:
        raise _in_trace(source, exc) from exc


def _check_table_key(path: Location, table: Table, key: str, given: bool) -> None:
    """Refuse a cached table measured of other windows or with other settings, whatever its
    file is called: a ``--table`` FILE (``given``) carries no cache key in its name, and a
    table in ``--table-dir`` or beside a trace may be another's copied or renamed over it
    (two traces' tables swapped); either would be scored and reported as this trace's."""
    if table.meta.get("key") == key:
        return
    if given:
        raise CommandLineError(
            f"--table {path} holds a table of another trace or workload, or of other --arms, "
            "--repeats, --batch-pages or --sample-pages; give another --table, or pass "
            "--rebuild to measure this one and replace it"
        )
    raise CommandLineError(
        f"cached table {path} holds a table of another trace or workload, or of other "
        "--arms, --repeats, --batch-pages or --sample-pages, than its name says (copied or "
        "renamed over it); pass --rebuild to measure this one and replace it, or delete it"
    )


def _build(args: argparse.Namespace, source: Source, arms, calibration: CostModel | None) -> Table:
    try:
        with _progress_bar(args, source) as bar:
            table = build_table(
                check_windows(source.windows()),
                arms,
                args.repeats,
                args.batch_pages,
                args.sample_pages,
                lambda n: bar.update(n - bar.n),
                calibration=calibration,
            )
        # the calibration made for it replaced a damaged one: said, as --cost-model
        # calibrated says it (_calibration), or later runs' numbers changed unexplained
        if table.calibration_note is not None:
            print(f"migcodec evaluate: note: {table.calibration_note}", file=sys.stderr)
        return table
    except (TraceError, WindowSourceError, TableError, CodecFailed) as exc:  # one of several
        raise _in_trace(source, exc) from exc
    except MemoryError:  # where the machine does not say how much it has
        fix = "read it on a machine with more memory" if source.trace else "use a smaller --pages"
        raise ValueError(f"cannot allocate the windows of {source.name}; {fix}") from None


def _in_trace(source: Source, exc: Exception) -> Exception:
    """``exc`` naming the trace it is about (with several, "window 2: ..." alone does not
    say which): its message prefixed with the trace, unless it starts with it already. A
    codec's failure stays one (``main`` reports it with the status of ``bench``'s)."""
    if source.trace is None or str(exc).startswith(str(source.trace)):
        return exc
    kind: type[Exception] = ValueError
    if isinstance(exc, CodecFailed):
        kind = type(exc)
    elif isinstance(exc, TraceError):
        kind = TraceError
    return kind(f"trace {source.trace}: {exc}")


def _progress_bar(args: argparse.Namespace, source: Source):
    """A bar over the windows measured, on stderr when it is a terminal (not with --json)."""
    from tqdm import tqdm

    total = args.windows if source.trace is None else None
    if source.trace is not None:
        try:
            total = TraceReader(source.trace).info().windows
        except (TraceError, OSError):
            total = None  # reading the windows will say what is wrong
    return tqdm(
        desc=f"{source.name}: measuring arms",
        total=total,
        unit=" windows",
        file=sys.stderr,
        disable=True if args.json else None,  # None: off unless stderr is a terminal
        leave=False,
    )


def _trace_source(source: Source) -> TraceSource:
    """``source`` as a cluster's workers open it: an absolute path or the URL."""
    from migcodec.selector.evaluation.cluster import TraceSource

    trace = source.trace
    if trace is None:
        raise ValueError("--scheduler distributes traces; --workload runs in process")
    url = str(trace.path.resolve()) if isinstance(trace, LocalLocation) else str(trace)
    return TraceSource(source.name, url, source.identity, len(TraceReader(trace)))


#: where ``--cost-model calibrated`` keeps this machine's calibration, a file
#: ``--cost-model FILE`` reads
CALIBRATION_KEPT = (
    "this machine's calibration is kept under $XDG_CACHE_HOME/migcodec, by default "
    "~/.cache/migcodec"
)
#: what to do about a ``--cost-model FILE`` that holds no model: the user named it, so
#: "calibrate again to replace it" (this machine's calibration's remedy) does not apply
NOT_A_COST_MODEL = (
    "it is not a cost model written by this migcodec: --cost-model calibrated writes one "
    f"({CALIBRATION_KEPT})"
)


def _cost_model(args: argparse.Namespace, arms) -> CostModel | None:
    """``measured``: none; ``calibrated``: this machine's (calibrated now if missing);
    otherwise a cost model file."""
    if args.cost_model == "measured":
        return None
    if args.cost_model == "calibrated":
        if not args.json and sys.stderr.isatty():
            print("cost model: this machine's calibration (made now if missing)", file=sys.stderr)
        return _calibration(arms, 4096, args.batch_pages)
    if not Path(args.cost_model).exists():  # not "calibrate again": a file the user named
        raise CommandLineError(
            f"--cost-model {args.cost_model!r} is neither 'measured', 'calibrated' nor an "
            f"existing file; give one of those ({CALIBRATION_KEPT})"
        )
    model = CostModel.load(args.cost_model, remedy=NOT_A_COST_MODEL)
    # its per-call costs and the framing taken off each output are per batch of its size:
    # a table of other batches would be scored with times of no run
    if model.batch_pages != args.batch_pages:
        raise CommandLineError(
            f"cost model {args.cost_model} was calibrated for {model.batch_pages}-page "
            f"batches, and --batch-pages is {args.batch_pages}; pass --batch-pages "
            f"{model.batch_pages}, or --cost-model calibrated to calibrate for "
            f"{args.batch_pages}-page batches"
        )
    # refused now, not once the first table has been measured: its arms, and the cheap
    # features' cost every policy that reads them is charged
    for label in [arm.label for arm in arms] + [FEATURES_LABEL]:
        if label not in model.arms:
            raise CommandLineError(
                f"cost model {args.cost_model} has no costs for {label!r} (it covers "
                f"{', '.join(model.arms)}); give a model calibrated with every arm of --arms "
                f"(--cost-model calibrated makes one: {CALIBRATION_KEPT})"
            )
    return model


def _modelled(args: argparse.Namespace, m: Measured, arms, model: CostModel | None) -> Table:
    """``m``'s table with ``model``'s times (as measured without one). This machine's
    calibration is of pages of one size: a trace of other pages (captured on a host of 16
    or 64 KiB pages) is modelled by a calibration on its own page size, made now if
    missing; a cost model file of other pages is refused."""
    if model is None:
        return m.table
    page_size = m.table.page_size
    if model.page_size != page_size:
        if args.cost_model != "calibrated":
            raise CommandLineError(
                f"cost model {args.cost_model} was calibrated on {model.page_size}-byte "
                f"pages and {m.source.name} holds {page_size}-byte pages; pass --cost-model "
                "calibrated to calibrate on its pages"
            )
        model = _calibration(arms, page_size, args.batch_pages)
    return m.table.modelled(model)


def _calibration(arms, page_size: int, batch_pages: int) -> CostModel:
    """This machine's calibration, made now if missing; where the one saved before was not
    used, or this one could not be kept, a note says so: the numbers it models were to be
    the same on every run, and would not be."""
    model = evaluation_cost_model(arms, page_size=page_size, batch_pages=batch_pages)
    if model.note is not None:
        print(f"migcodec evaluate: note: {model.note}", file=sys.stderr)
    return model


#: the failures reported in one line (each says what went wrong and the fix); a trace's
#: are TraceError, a cluster's RuntimeError, a URL's or a table's ValueError
REPORTED = (ValueError, RuntimeError, OSError, TraceError)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except CodecStuck:  # says to leave its arms out already, as what to do meanwhile
        raise
    except (CodecFailed, PageSizeUnsupported) as exc:
        # every codec evaluate runs is an arm's: besides what to do about the codec's
        # package or its pages (said already), the other arms can be evaluated without it
        # (a default arm that cannot describe a trace's pages was named without saying so)
        raise type(exc)(f"{exc}; or {LEAVE_ARMS_OUT}") from exc
    except REPORTED as exc:
        if reported_by_main(exc):  # a closed or full stdout is not the command line's fault
            raise
        print(f"migcodec evaluate: {exc}", file=sys.stderr)
        return 2


def _connect(args: argparse.Namespace) -> Cluster | None:
    """The cluster of ``--scheduler`` (none without it); says where its dashboard is."""
    if not args.scheduler:
        return None
    from migcodec.selector.evaluation.cluster import Cluster

    cluster = Cluster(args.scheduler, progress=sys.stderr.isatty() and not args.json)
    served = "" if cluster.dashboard_served else " (not served: pip install bokeh)"
    print(
        f"dask: {cluster.n_workers} workers at {cluster.client.scheduler.address}; "
        f"dashboard {cluster.dashboard}{served}",
        file=sys.stderr,
    )
    return cluster


#: options whose value names something, and an example of it: an empty (or blank) value
#: is refused, not taken as the option left out (``--grid ''`` ran no grid, ``--table ''``
#: cached nothing, ``--scheduler ''`` ran in process, each with exit status 0)
NAMING_OPTIONS = {
    "corpus": "a directory of traces, e.g. corpus/traces",
    "workload": "a workload or page generators, e.g. memcached or zero,text",
    "table": "a file, e.g. table.npz",
    "table_dir": "a directory, e.g. tables",
    "grid": "a JSON file, e.g. grid.json",
    "scheduler": "local, local:N or tcp://HOST:PORT",
    "cost_model": "measured, calibrated or a cost model JSON file",
}


def _check_named(args: argparse.Namespace) -> None:
    """Refuse an option of :data:`NAMING_OPTIONS` given an empty value, before any work, and
    an empty TRACE (``Path("")`` is the current directory, read as a trace)."""
    for trace in args.trace:
        check_trace_named(trace)
    for key, example in NAMING_OPTIONS.items():
        value = getattr(args, key)
        if value is not None and not value.strip():
            option = "--" + key.replace("_", "-")
            raise CommandLineError(
                f"{option} {value!r} names nothing; give {example}, or leave {option} out"
            )


#: options that apply only beside another (given without it, each was silently ignored:
#: ``evaluate TRACE --windows 3`` scored the whole trace). ``--task-windows`` is not one:
#: it splits the work, not the result, and one set of options serves a run on a cluster
#: and the same run in process
DEPENDENT_OPTIONS = {
    "windows": ("workload", "a trace's windows are its own"),
    "pages": ("workload", "a trace's windows are its own"),
    "seed": ("workload", "a trace's windows are its own"),
    "phase_windows": ("workload", "a trace's windows are its own"),
}


def _check_dependent(args: argparse.Namespace) -> None:
    """Refuse an option of :data:`DEPENDENT_OPTIONS` given without the one it needs, and
    the throughput objective's link and workers given for another objective (ignored,
    they reported one result as one per link)."""
    for dest, (needs, why) in DEPENDENT_OPTIONS.items():
        if given(args, dest) and not getattr(args, needs):
            option, other = "--" + dest.replace("_", "-"), "--" + needs
            raise CommandLineError(f"{option} applies to {other} ({why}); drop {option}")
    if args.objective != "throughput":
        extra = [f"--{dest}" for dest in ("link", "workers") if given(args, dest)]
        if extra:
            raise CommandLineError(
                f"{' and '.join(extra)} set{'s' if len(extra) == 1 else ''} the throughput "
                f"objective; the {args.objective} objective has neither: drop "
                f"{'it' if len(extra) == 1 else 'them'}, or score --objective throughput"
            )


def _run(args: argparse.Namespace) -> int:
    if args.plot is not None:  # before any table is measured, not after; "" is refused
        check_plot_path(args.plot)
    _check_named(args)
    _check_dependent(args)
    # parsing builds each arm's codec (two arms configured alike are refused): a plugin's
    # import, probe or constructor that never returns is named, as a stuck codec call is
    arms = run_bounded(parse_arms, args.arms, instead=LEAVE_ARMS_OUT)
    names = _policy_names(args.policies)
    _check_fixed_arms(names, arms)
    policies = [parse_policy(name).get_config() for name in names]  # refused before measuring
    same = [name for i, name in enumerate(names) if policies[i] in policies[:i]]
    if same:  # one policy twice: two rows of one label, and the overall rows listed it twice
        raise CommandLineError(
            f"--policies {args.policies!r} gives {', '.join(same)} as a policy given before "
            "(the same parameters); give each policy once"
        )
    links = [link.strip() for link in args.link.split(",") if link.strip()]
    # a link twice would be replayed twice and counted as two traces in the overall rows,
    # written alike or not (1Gbit, 1000Mbit, 125MB/s)
    types.check_once(links, "--link", args.link, "link rate")
    rates: dict[float, str] = {}
    for link in links:
        same = rates.setdefault(_link_rate(link), link)
        if same != link:
            modelled = ", as unlimited is modelled" if "unlimited" in (same, link) else ""
            raise CommandLineError(
                f"--link {args.link!r} names {same} and {link}, one rate: "
                f"{_link_rate(link):g} bytes/s{modelled}; name each link rate once"
            )
    if args.table and args.table_dir:
        raise CommandLineError("give --table or --table-dir, not both")
    if args.grid:
        _check_input_file(args.grid, "--grid")
    configs = load_grid(args.grid) if args.grid else None
    if configs is not None and (args.policies is not None or args.plot):
        raise CommandLineError(
            "--grid replays the grid's configurations; drop --policies and --plot"
        )
    if args.scheduler and args.workload:
        raise CommandLineError(
            "--scheduler distributes traces (TRACE... or --corpus); --workload runs in process"
        )
    sources = _sources(args)
    _check_table_options(args, several=len(sources) > 1)
    if args.plot and (len(sources) > 1 or len(links) > 1):
        raise CommandLineError("--plot draws one trace at one link")
    model = _cost_model(args, arms)
    objectives = {link: _objective(args, link) for link in links}
    cluster = _connect(args)
    try:
        # a table is built with this machine's calibration as its arms' priors, whatever
        # --cost-model says (a file's priors replace them as it models the table): cached
        # under a key that does not name the cost model, a table built with a file's
        # priors was replayed by later measured runs with them, the file's decision
        # prices of 10 ms putting `auto` at 0.02 of the oracle where it was at 0.93
        machine = model if args.cost_model == "calibrated" else None
        measured = _measure(args, sources, arms, machine, cluster)
        scored = [_modelled(args, m, arms, model) for m in measured]
        cost = "measured" if model is None else f"cost model ({args.cost_model})"
        if configs is not None:
            return _run_grid(args, configs, measured, scored, objectives, cost, cluster)
        cells = [(t, objectives[link]) for t in scored for link in links]
        if cluster is not None:
            labels = [f"{m.source.name} at {link}" for m in measured for link in links]
            evaluations = cluster.evaluate(cells, names, labels)
        else:
            evaluations = [evaluate(t, [parse_policy(p) for p in names], o) for t, o in cells]
    finally:
        if cluster is not None:
            cluster.close()
    results = [
        Result(m.source, link, m.table, m.cached, m.path, ev)
        for (m, link), ev in zip(
            ((m, link) for m in measured for link in links), evaluations, strict=True
        )
    ]
    several = len(sources) > 1 or len(links) > 1
    if args.json:
        doc = [_result_doc(r, cost) for r in results]
        out = doc[0] if not several else {"results": doc, "overall": _overall(results)}
        print(json_document(out))
    else:
        for r in results:
            _print_result(r, cost, args)
        if several:
            _print_overall(results)
    if args.plot:  # after the report: a plot that fails to write does not take it along
        from migcodec.plots.evaluation import plot_evaluation

        sys.stdout.flush()
        draw_after_report(plot_evaluation, results[0].evaluation, path=args.plot)
    return 0


def _policy_names(text: str | None) -> list[str]:
    """The policies of ``--policies`` (the defaults without it); refused if it names none."""
    if text is None:
        return list(DEFAULT_POLICIES)
    names = text.replace(";", " ").split()
    if not names:
        raise CommandLineError(
            f"--policies {text!r} names no policy; give one or more separated by ';', e.g. "
            "'auto;d-ucb:gamma=0.9', or leave --policies out for the defaults"
        )
    return names


def _check_fixed_arms(names: list[str], arms) -> None:
    """Refuse a ``fixed`` policy whose arm is not the index of one of ``arms``, listing
    them by index, before any table is measured: an arm's label given for its index was
    "arm must be a number", and an index past the last arm was refused only once every
    table had been measured. A fraction is left to the policy's own check."""
    labels = [arm.label for arm in arms]
    for name in names:
        config = parse_spec(name, "policy", PolicyError)
        if config.get("name") != "fixed" or "arm" not in config:
            continue
        arm = config["arm"]
        if isinstance(arm, int | float) and not isinstance(arm, bool) and 0 <= arm < len(labels):
            continue
        listed = ", ".join(f"{i} {label}" for i, label in enumerate(labels))
        hint = f" ({arm} is fixed:arm={labels.index(arm)})" if arm in labels else ""
        raise CommandLineError(
            f"policy {name!r}: arm is the index of an arm in the arm list, from 0 to "
            f"{len(labels) - 1} ({listed}); got {arm!r}{hint}"
        )


def _link_rate(link: str) -> float:
    """Bytes/s of one ``--link`` rate; ``unlimited`` as ``--codec auto`` models it."""
    return UNLIMITED_LINK if link == "unlimited" else parse_rate(link)


def _objective(args: argparse.Namespace, link: str) -> Objective:
    params = {"link": _link_rate(link), "workers": args.workers}
    return make_objective(args.objective, **(params if args.objective == "throughput" else {}))


def _run_grid(
    args: argparse.Namespace,
    configs: list[dict],
    measured: list[Measured],
    scored: list[Table],
    objectives: dict[str, Objective],
    cost: str,
    cluster: Cluster | None,
) -> int:
    """Rank the grid's configurations over every (trace, link) and choose one per trace on
    the other traces (:func:`~migcodec.selector.evaluation.grid.leave_one_trace_out`)."""
    names = [m.source.name for m in measured]
    if len(set(names)) != len(names):
        raise SystemExit(
            "migcodec evaluate: --grid scores traces by name, and two have the same name: "
            f"{', '.join(sorted(n for n in set(names) if names.count(n) > 1))}"
        )
    cells = {
        (name, link): (table, objective)
        for name, table in zip(names, scored, strict=True)
        for link, objective in objectives.items()
    }
    scores = score_grid(configs, cells, cluster.replay_map(cells) if cluster else None)
    ranking = rank_configs(configs, scores)
    chosen = leave_one_trace_out(configs, scores) if len(names) > 1 else {}
    doc = {
        "grid": {
            "policy": configs[0]["name"],
            "configurations": len(configs),
            "traces": names,
            "links": list(objectives),
            "objective": next(iter(objectives.values())).get_config(),
            "timings": cost,
            "ranking": ranking,
            "leave_one_trace_out": [
                {
                    "held_out": held,
                    "config": config,
                    "scores": {
                        link: {"vs_oracle": s.vs_oracle, "vs_best_fixed": s.vs_best_fixed}
                        for link, s in cell.items()
                    },
                }
                for held, (config, cell) in chosen.items()
            ],
            "tables": [
                {
                    "trace": m.source.name,
                    "path": str(m.path) if m.path else None,
                    "cached": m.cached,
                }
                for m in measured
            ],
        }
    }
    if args.json:
        print(json_document(doc))
        return 0
    _print_grid(doc["grid"])
    return 0


def _params(config: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in config.items() if k != "name") or "(defaults)"


def _print_grid(grid: dict) -> None:
    print(
        f"== grid: {grid['configurations']} configurations of {grid['policy']} over "
        f"{len(grid['traces'])} traces at {', '.join(grid['links'])}; timings: {grid['timings']}"
    )
    print(f"{'rank':>4} {'score':>7} {'/oracle mean (min)':>19} {'/fixed mean (min)':>18}  config")
    for rank, row in enumerate(grid["ranking"][:GRID_ROWS], 1):
        print(
            f"{rank:>4} {row['score']:>7.3f} {row['vs_oracle_mean']:>8.3f} "
            f"({row['vs_oracle_min']:.3f}) {row['vs_best_fixed_mean']:>8.3f} "
            f"({row['vs_best_fixed_min']:.3f})  {_params(row['config'])}"
        )
    if len(grid["ranking"]) > GRID_ROWS:
        print(f"     ... {len(grid['ranking']) - GRID_ROWS} more (--json lists every one)")
    print(
        "score = mean total/oracle - 2 x mean shortfall below the best fixed arm, over every "
        "trace and link\n"
    )
    if not grid["leave_one_trace_out"]:
        print("leave one trace out: needs two traces or more")
        return
    print("== leave one trace out: the configuration best on the other traces, on this one")
    links = grid["links"]
    print(f"{'held out':<16} " + " ".join(f"{link + ' /oracle /fixed':>24}" for link in links))
    for row in grid["leave_one_trace_out"]:
        scores = [row["scores"][link] for link in links]
        cells = " ".join(f"{s['vs_oracle']:>15.3f} {s['vs_best_fixed']:>8.3f}" for s in scores)
        print(f"{row['held_out'][:16]:<16} {cells}  {_params(row['config'])}")


def _result_doc(r: Result, cost: str) -> dict:
    doc = r.evaluation.as_dict()
    doc["trace"] = r.source.name
    doc["link"] = r.link
    doc["timings"] = cost
    doc["table"] = {
        "path": str(r.path) if r.path else None,
        "cached": r.cached,
        "windows": r.table.n_windows,
        "timing_spread": dict(zip(r.table.labels, r.table.spread().tolist(), strict=True)),
        **{k: v for k, v in r.table.meta.items() if k not in ("costs", "key")},
    }
    return doc


def _print_result(r: Result, cost: str, args: argparse.Namespace) -> None:
    ev, table = r.evaluation, r.table
    where = f"{r.path} ({'cached' if r.cached else 'built'})" if r.path else "not cached"
    print(f"== {r.source.name} at {r.link}: {table.n_windows} windows; table {where}")
    print(
        f"timings: {cost}; oracle switches arm "
        f"{int((ev.oracle_arms[1:] != ev.oracle_arms[:-1]).sum())} times; best fixed arm: "
        f"{ev.labels[ev.best_fixed]}"
    )
    spread = table.spread()
    if np.isfinite(spread).any() and args.repeats > 1:
        parts = ", ".join(f"{label} {s:.0%}" for label, s in zip(table.labels, spread, strict=True))
        print(f"measured timing spread between repeats (median over windows): {parts}")
    print(
        f"{'policy':<50} {'total':>12} {'/oracle':>8} {'/fixed':>7} {'sum/oracle':>10} "
        f"{'switches':>8} {'feature ms':>10}"
    )
    for s in ev.scores:
        print(
            f"{s.label:<50} {s.total:>12.4g} {s.vs_oracle:>8.3f} {s.vs_best_fixed:>7.3f} "
            f"{s.sum_vs_oracle:>10.3f} {s.switches:>8d} {s.feature_s * 1e3:>10.2f}"
        )
    objective = ev.objective
    print(
        f"total = {objective.name} over the whole trace ({objective.unit}; for throughput "
        "guest bytes / total time); sum/oracle = sum of per-window rewards / oracle's\n"
    )


#: configurations the text report of a grid lists (``--json`` lists every one)
GRID_ROWS = 10


def _overall(results: list[Result]) -> list[dict]:
    """Per link and policy: mean and minimum of total/oracle and total/best fixed arm."""
    rows = []
    for link in dict.fromkeys(r.link for r in results):
        at = [r for r in results if r.link == link]
        # the policies asked for, after each arm's own fixed policy: by position, not by a
        # label's "fixed" (a --policies fixed:arm=1 of the user's was left out with them)
        first = at[0].table.n_arms
        for i, head in enumerate(at[0].evaluation.scores[first:], start=first):
            label = head.label
            scores = [r.evaluation.scores[i] for r in at]
            oracle = [s.vs_oracle for s in scores]
            fixed = [s.vs_best_fixed for s in scores]
            rows.append(
                {
                    "link": link,
                    "policy": label,
                    "traces": len(at),
                    "vs_oracle_mean": float(np.mean(oracle)),
                    "vs_oracle_min": float(np.min(oracle)),
                    "vs_best_fixed_mean": float(np.mean(fixed)),
                    "vs_best_fixed_min": float(np.min(fixed)),
                }
            )
    return rows


def _print_overall(results: list[Result]) -> None:
    print("== overall: total/oracle and total/best fixed arm over every trace, mean (min)")
    print(f"{'link':<8} {'policy':<40} {'/oracle':>16} {'/fixed':>16}")
    for row in _overall(results):
        print(
            f"{row['link']:<8} {row['policy']:<40} "
            f"{row['vs_oracle_mean']:>8.3f} ({row['vs_oracle_min']:.3f}) "
            f"{row['vs_best_fixed_mean']:>8.3f} ({row['vs_best_fixed_min']:.3f})"
        )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score codec-selection policies on traces, a corpus or a workload",
    )
    p.add_argument(
        "trace", nargs="*", help="trace directories: paths or fsspec URLs (s3://bucket/t)"
    )
    p.add_argument(
        "--corpus", help="a directory (path or fsspec URL) of traces: every */manifest.json"
    )
    p.add_argument(
        "--workload",
        help="synthetic windows instead of a trace: a page generator, "
        "or several comma-separated for phases (zero,memcached,text,random)",
    )
    for option, kind, default, text in (  # --workload's own: refused without it
        ("--windows", types.windows, 64, "windows of --workload"),
        ("--pages", types.positive_int, 1024, "dirty pages per --workload window"),
        ("--seed", types.seed, 0, "seed of --workload"),
        (
            "--phase-windows",
            types.positive_int,
            16,
            "windows per phase of a comma-separated --workload",
        ),
    ):
        p.add_argument(option, type=kind, default=default, action=Given, help=text)
    p.add_argument(
        "--arms",
        help="arms separated by ';' or spaces, each codec[:key=value,...] "
        "(default: raw;lz4;zstd:level=1;zstd:level=3;zlib-ng:level=1 and the installed "
        "delta codecs dsa-delta;xbzrle)",
    )
    p.add_argument(
        "--policies",
        help="policies separated by ';' or spaces, each name[:key=value,...] (e.g. "
        "'auto;d-ucb:gamma=0.9'); `auto` is what `--codec auto` runs, `fixed:arm=N` always "
        "plays arm N of --arms, counted from 0; default: " + " ".join(DEFAULT_POLICIES),
    )
    p.add_argument(
        "--objective",
        default="throughput",
        choices=["throughput", "cpu", "wire"],
        help="what a policy maximises",
    )
    p.add_argument(
        "--link",
        type=types.link_rates,
        default="10Gbit",
        action=Joined,
        help="link rate(s) for throughput, comma-separated or in repeated --link options "
        "(--link 1Gbit --link 10Gbit is --link 1Gbit,10Gbit); 'unlimited' is modelled as "
        f"`migrate --codec auto` models it, a {UNLIMITED_LINK * 8 / 1e9:g} Gbit/s link",
    )
    p.add_argument(
        "--workers",
        type=types.positive_number,
        default=2,
        action=Given,
        help="parallel encoders (the throughput objective's)",
    )
    p.add_argument("--repeats", type=types.repeats, default=3, help="timings per (window, arm)")
    p.add_argument(
        "--cost-model",
        default="measured",
        help="'measured' (each window's timings), 'calibrated' (this machine's cost model of "
        "every arm, the same numbers on every run) or a cost model JSON file",
    )
    p.add_argument(
        "--batch-pages",
        type=types.batch_pages,
        default=64,
        help="pages per encoded batch (at most 4096, the most a migration stream's frame carries)",
    )
    p.add_argument(
        "--sample-pages",
        type=types.positive_int,
        default=32,
        help="pages the cheap features read",
    )
    p.add_argument(
        "--table",
        help="table file, in an existing directory (with several traces: a directory, "
        "created when the first table is written)",
    )
    p.add_argument(
        "--table-dir",
        help="cache tables in this directory (a path or fsspec URL) instead of beside the "
        "traces (for traces that cannot be written to); a missing one is created when the "
        "first table is written",
    )
    p.add_argument(
        "--grid",
        help='JSON grid of one policy\'s configurations, {"policy": NAME, "params": {KEY: '
        "[VALUES...]}}: ranks every configuration over the traces and links, and chooses one "
        "per trace on the other traces (leave one trace out); at most "
        f"{MAX_GRID_CONFIGS} configurations",
    )
    p.add_argument(
        "--scheduler",
        help="run table measurements and replays as Dask tasks: local (a worker process per "
        "core), local:N (N worker processes) or a running scheduler's tcp://HOST:PORT; "
        "needs pip install 'migcodec[distributed]'",
    )
    p.add_argument(
        "--task-windows",
        type=types.positive_int,
        default=TASK_WINDOWS,
        help="windows per table task with --scheduler",
    )
    p.add_argument("--rebuild", action="store_true", help="re-measure even if cached")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--plot", help="write a PNG of choices and cumulative reward")
    p.set_defaults(func=run)
