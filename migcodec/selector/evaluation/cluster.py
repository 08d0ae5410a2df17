"""Offline evaluation on a Dask cluster: tables measured and policies replayed as tasks.

A corpus evaluation is many independent pieces of work, handed here to a `Dask
distributed <https://distributed.dask.org>`_ cluster: one started on this host (``local:N``:
N single-threaded worker processes, so each measures on a core of its own) or one already
running (``tcp://HOST:PORT``). Dask is imported only when a cluster is asked for.

Tasks:

- **table measurement** per (trace, range of windows, arm): :func:`measure_range` streams
  the range's windows from the trace (a path every worker sees, or an fsspec URL) and
  encodes them with one arm; one more task per range measures the features and probes. The
  parts are joined in window order by
  :func:`~migcodec.selector.evaluation.table.join_parts`, the code a serial table uses. A
  range's tasks prefer one worker, whose :class:`WindowCache` keeps its decoded windows, so
  a range is decoded once rather than once per arm. Ranges are placed heaviest first on the
  least loaded worker; idle workers take tasks over from busy ones.
- **replay** per (trace, link, policy) (:func:`~.replay.replay_configs`), and per chunk of a
  grid's configurations and cell, scored here by :func:`~.replay.score` as in a serial run.

A dead worker is replaced by its nanny and its tasks rerun elsewhere; a task that raises is
retried up to :data:`TASK_RETRIES` times, but not one whose codec failed, lied or is stuck
(a call that lasted :data:`~migcodec.codecs.stuck.STUCK_AFTER_S`): it would again. Replays'
tables travel inside their tasks' definitions, so they too survive a lost worker. Results
do not depend on placement: bytes, ratios and features come from the windows alone; only
measured timings vary, as between two serial runs (``--cost-model`` replaces them).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from migcodec.codecs import CodecFailed, CodecStuck
from migcodec.codecs.bounded import CodecThread, run_bounded
from migcodec.datasets import Window
from migcodec.datasets.trace import TraceReader
from migcodec.selector.arms import Arm
from migcodec.selector.costmodel import CostModel
from migcodec.selector.evaluation.grid import Cell, ReplayMap
from migcodec.selector.evaluation.replay import (
    Evaluation,
    ReplayResult,
    fixed_configs,
    replay_configs,
    score,
)
from migcodec.selector.evaluation.table import (
    LEAVE_ARMS_OUT,
    Table,
    TableError,
    TablePart,
    join_parts,
    measure_windows,
)
from migcodec.selector.evaluation.windows import check_windows
from migcodec.selector.features import FeatureExtractor
from migcodec.selector.objectives import Objective

#: windows per table task by default: enough encodes per task that scheduling it costs
#: little beside them, and a corpus of a few traces still makes many tasks per worker
TASK_WINDOWS = 16
#: times a task that raised is run again before the evaluation fails
TASK_RETRIES = 2
#: decoded windows each worker process keeps for the other arms of a range
WINDOW_CACHE_BYTES = 256 << 20
#: how long to wait for a running scheduler to answer, and for its first worker
CONNECT_TIMEOUT_S = 30
#: seconds the probe for a listener at a scheduler's address may take (see _refused_at)
_PROBE_TIMEOUT_S = 5.0
#: seconds past that a connection's handshake may take before it is given up on
_HANDSHAKE_GRACE_S = 5
_PRE_SPAWN = "distributed.nanny.pre-spawn-environ"
INSTALL_HINT = "pip install 'migcodec[distributed]' (dask[distributed] and fsspec)"


class SchedulerError(RuntimeError):
    """No cluster to run on: dask missing, a bad ``--scheduler`` value, an unreachable
    scheduler, or workers that cannot run migcodec. The message says what to do."""


@dataclass(frozen=True)
class TraceSource:
    """A trace as every worker opens it: ``url`` is an absolute path (on a filesystem the
    workers share) or an fsspec URL; ``identity`` keys its cached table and the workers'
    window caches (a changed trace is never served from them); ``windows`` is its length."""

    name: str
    url: str
    identity: str
    windows: int


@dataclass(frozen=True)
class TableSettings:
    """What shapes a table besides its windows (see
    :func:`~migcodec.selector.evaluation.table.table_key`)."""

    arms: tuple[tuple[tuple[str, Any], ...], ...]
    repeats: int = 3
    batch_pages: int = 64
    sample_pages: int = 32
    probe_pages: int = 32

    @classmethod
    def of(cls, arms: Sequence[Arm], **kwargs: int) -> TableSettings:
        return cls(tuple(a.config for a in arms), **kwargs)

    def arm_list(self) -> list[Arm]:
        return [Arm.of(dict(config)) for config in self.arms]


def window_ranges(n_windows: int, per_task: int = TASK_WINDOWS) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of at most ``per_task`` windows covering ``n_windows``."""
    if per_task < 1:
        raise ValueError(f"windows per task must be >= 1, got {per_task}")
    return [(a, min(a + per_task, n_windows)) for a in range(0, n_windows, per_task)]


# -- worker side --------------------------------------------------------------------------
class WindowCache:
    """Decoded windows of traces, least recently used first out, at most ``max_bytes``.

    Each arm of a range is its own task; the cache lets a worker that runs several arms of
    a range decode it once. Entries are keyed by the trace's identity, so a rewritten trace
    is read anew. A window larger than ``max_bytes`` is streamed, not kept.
    """

    def __init__(self, max_bytes: int = WINDOW_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str, int], tuple[Window, int]] = OrderedDict()
        self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def windows(self, source: TraceSource, start: int, stop: int) -> Iterator[Window]:
        """Windows ``start`` to ``stop`` of ``source``, in order, from the cache or the
        trace (opened only when a window is missing)."""
        reader: TraceReader | None = None
        try:
            for i in range(start, stop):
                key = (source.url, source.identity, i)
                with self._lock:
                    hit = self._entries.get(key)
                    if hit is not None:
                        self._entries.move_to_end(key)
                if hit is not None:
                    yield hit[0]
                    continue
                if reader is None:
                    reader = TraceReader(source.url)
                window = reader[i]
                self._put(key, window)
                yield window
        finally:
            if reader is not None:
                reader.close()

    def _put(self, key: tuple[str, str, int], window: Window) -> None:
        size = window.pages.nbytes + window.page_indices.nbytes
        size += 0 if window.previous is None else window.previous.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (window, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped


_WINDOWS = WindowCache()
#: per thread that measures tables: built arms and feature extractors, by settings.
#: Building a codec looks its plugin up among every installed package's entry points, and
#: an extractor times every arm's probe calls: both would cost a task more than a range's
#: encodes of a small trace. Per thread, because a codec instance is used by one thread at
#: a time (a task's thread left inside a stuck codec keeps its own).
_BUILT = threading.local()


def _built_arms(settings: TableSettings) -> list[Arm]:
    cache = _BUILT.__dict__.setdefault("arms", {})
    arms = cache.get(settings)
    if arms is None:
        arms = cache[settings] = settings.arm_list()
    return arms


def _built_extractor(settings: TableSettings) -> FeatureExtractor:
    """Built for a features task only: an arm's task then calls no other arm's codec."""
    cache = _BUILT.__dict__.setdefault("extractors", {})
    extractor = cache.get(settings)
    if extractor is None:
        extractor = cache[settings] = FeatureExtractor(
            [a.codec for a in _built_arms(settings)],
            sample_pages=settings.sample_pages,
            batch_pages=settings.batch_pages,
            probe_pages=settings.probe_pages,
        )
    return extractor


#: per Dask worker thread: the thread its table tasks run on (see measure_range)
_TASKS = threading.local()


@dataclass(frozen=True)
class Refused:
    """What a table task returns, rather than raises, for a codec that failed, lied or is
    stuck (``error``): Dask runs a task that raised again (:data:`TASK_RETRIES`), and the
    codec would only fail again, a stuck one after another wait as long."""

    error: CodecFailed


#: glibc's largest dynamic mmap threshold on 64-bit hosts, and mallopt's parameter numbers
_MMAP_THRESHOLD = 32 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_heap_set = False


def _heap_allocations() -> None:
    """Let this worker process allocate windows' arrays from its heap, as a process that
    does not run under a Dask nanny does.

    The nanny starts workers with ``MALLOC_TRIM_THRESHOLD_`` set, which also fixes glibc's
    mmap threshold: every array past 128 KiB is then mapped anew and page-faulted in, and the
    codecs' timings are charged for page faults an in-process run does not pay. ``local:N``
    starts its workers without the variable; a running cluster's are reset here (once per
    process) so that arrays up to 32 MiB come from the heap.
    """
    global _heap_set
    if _heap_set:
        return
    _heap_set = True
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc: it has no such thresholds
        return
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD)


def measure_range(
    source: TraceSource,
    start: int,
    stop: int,
    settings: TableSettings,
    encode: Sequence[int],
    features: bool,
) -> TablePart | Refused:
    """One table task: arms ``encode`` (and the features, with ``features``) measured on
    windows ``start`` to ``stop`` of ``source``, streamed through this process's
    :class:`WindowCache`; :class:`Refused` for a codec that fails, lies or is stuck.

    The whole task runs on a thread of its own, which this Dask thread waits for no longer
    than a codec call may last (:mod:`migcodec.codecs.bounded`; one handoff per task): a
    stuck codec ends the task, and the evaluation, instead of holding the worker forever."""
    _heap_allocations()
    thread = getattr(_TASKS, "thread", None)
    if thread is None:
        thread = _TASKS.thread = CodecThread(LEAVE_ARMS_OUT, "migcodec-table-task")

    def measure() -> TablePart:
        return measure_windows(
            check_windows(_WINDOWS.windows(source, start, stop)),
            _built_arms(settings),
            encode=list(encode),
            features=features,
            repeats=settings.repeats,
            batch_pages=settings.batch_pages,
            sample_pages=settings.sample_pages,
            probe_pages=settings.probe_pages,
            start=start,
            stop=stop,
            extractor=_built_extractor(settings) if features else None,
        )

    try:
        return thread.run(measure)
    except CodecFailed as exc:
        return Refused(exc)


def clear_window_cache() -> int:
    """Empty this process's window cache (at the end of an evaluation, so that a
    long-running worker does not keep a corpus's windows); returns the bytes it held."""
    held = _WINDOWS.nbytes
    _WINDOWS.clear()
    return held


def worker_check(arms: tuple) -> dict[str, Any]:
    """What a worker runs: its migcodec version and each arm it cannot build. The arms are
    built on a thread of their own, waited for no longer than a codec call may last: a
    plugin whose import, probe or constructor never returns is a problem named, not a
    check (and a worker) held forever."""
    import migcodec

    try:
        problems = run_bounded(_arm_problems, arms, instead=LEAVE_ARMS_OUT)
    except CodecStuck as exc:  # says what to do already: not told to install it as well
        return {"version": migcodec.__version__, "problems": [], "stuck": str(exc)}
    return {"version": migcodec.__version__, "problems": problems}


def _arm_problems(arms: tuple) -> list[str]:
    problems = []
    for config in arms:
        arm = Arm.of(dict(config))
        try:
            arm.codec  # noqa: B018 - building the codec is the check
        except Exception as exc:  # any failure to build is reported, not raised
            problems.append(f"{arm.label}: {exc}")
    return problems


def _value(x: Any) -> Any:
    """A task whose result is its argument: data (a table) that a lost worker's replays
    can have again, since it lives in the task's definition on the scheduler."""
    return x


# -- client side --------------------------------------------------------------------------
def _check_address(spec: str) -> None:
    """Refuse a scheduler URL without a host and a port before connecting: ``tcp://`` was
    tried, and Dask's complaint about it read as something other than a scheduler
    answering."""
    from urllib.parse import urlsplit

    parts = urlsplit(spec)
    if parts.scheme not in ("tcp", "tls"):  # other transports address workers otherwise
        return
    try:
        port = parts.port
    except ValueError:  # not a number, or past 65535
        port = None
    if not parts.hostname or port is None:
        raise SchedulerError(
            f"--scheduler {spec} names no scheduler's HOST:PORT; give one as `dask scheduler` "
            "prints it (e.g. tcp://127.0.0.1:8786), or local"
        )
    _refused_at(spec, parts.hostname, port)


def _refused_at(spec: str, host: str, port: int) -> None:
    """Refuse at once an address where nothing listens: Dask retries a refused connection
    for its whole timeout (30 s), in case a scheduler is starting, and a mistyped port
    was a half-minute wait for "cannot reach". The probe is one connection, closed before
    any message (a scheduler logs it as closed before its handshake); whatever else it
    meets (no answer, a name that does not resolve) is left to Dask to report."""
    import socket

    try:
        socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S).close()
    except ConnectionRefusedError:
        raise SchedulerError(
            f"nothing listens at {spec} (connection refused); start a scheduler there with "
            "`dask scheduler`, or check the address it printed"
        ) from None
    except OSError:
        pass


def _client_within(address: str, seconds: float):
    """``distributed.Client(address)``, given up on after ``seconds`` (and a few more):
    its own timeout bounds the connection, not the handshake after it, and a server that
    accepted and never spoke (``nc -l``) held ``evaluate`` forever. Given up on, the
    connecting thread is left to the process's end (a daemon)."""
    import distributed

    box: dict = {}

    def connect() -> None:
        try:
            box["client"] = distributed.Client(address, timeout=seconds)
        except BaseException as exc:  # the caller's to raise
            box["error"] = exc

    thread = threading.Thread(target=connect, name="migcodec-dask-connect", daemon=True)
    thread.start()
    thread.join(seconds + _HANDSHAKE_GRACE_S)
    if thread.is_alive():
        raise TimeoutError(f"it accepted the connection and did not answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["client"]


@dataclass
class Cluster:
    """A connection to a Dask cluster, and the cluster itself for ``local:N``.

    ``spec`` is ``local`` (one worker per core), ``local:N`` or a scheduler address
    (``tcp://HOST:PORT``, any protocol Dask speaks). ``progress`` shows a bar per stage on
    ``stderr``. Close it (or use it as a context manager) to stop a local cluster.
    """

    spec: str
    progress: bool = False
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    client: Any = field(init=False, repr=False)
    dashboard: str | None = field(init=False, default=None)
    _cluster: Any = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        try:
            import distributed
        except ImportError:
            raise SchedulerError(
                f"--scheduler needs Dask's distributed scheduler: {INSTALL_HINT}"
            ) from None
        spec = self.spec.strip()
        if spec == "local" or spec.startswith("local:"):
            import dask

            n = _local_workers(spec)
            # workers allocate as this process does (see _heap_allocations), and do not
            # sample their tasks' stacks for the dashboard's profile every 10 ms (CPU the
            # measurements would share)
            local = {
                f"{_PRE_SPAWN}.MALLOC_TRIM_THRESHOLD_": None,
                "distributed.worker.profile.enabled": False,
            }
            with dask.config.set(local):
                self._cluster = distributed.LocalCluster(
                    n_workers=n,
                    threads_per_worker=1,
                    processes=True,
                    silence_logs=logging.ERROR,
                )
            self.client = distributed.Client(self._cluster)
        elif "://" in spec:
            _check_address(spec)
            try:
                self.client = _client_within(spec, CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise SchedulerError(
                    f"cannot reach the Dask scheduler at {spec}: {exc}; start one with "
                    f"`dask scheduler` and workers with `dask worker {spec}`"
                ) from exc
            except Exception as exc:
                # something else answered: an HTTP server's first bytes read as a message
                # length had Dask ask numpy for exabytes (a MemoryError traceback)
                why = " ".join(str(exc).split())[:200]
                raise SchedulerError(
                    f"what answers at {spec} is not a Dask scheduler ({type(exc).__name__}: "
                    f"{why}); check the address, and start one with `dask scheduler`"
                ) from exc
            try:
                self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            except TimeoutError:
                self.close()
                raise SchedulerError(
                    f"no worker joined the scheduler at {spec} within {CONNECT_TIMEOUT_S} s; "
                    f"start workers with `dask worker {spec}`"
                ) from None
        else:
            raise SchedulerError(
                f"--scheduler {self.spec!r}: give local, local:N (N worker processes here) "
                "or a running scheduler's address, tcp://HOST:PORT"
            )
        self.dashboard = self.client.dashboard_link

    @property
    def dashboard_served(self) -> bool:
        """Whether the dashboard is known to be served: a scheduler serves it only with
        bokeh installed where it runs (here, for ``local:N``; a running scheduler's host is
        not looked at)."""
        if self._cluster is None:
            return True
        try:
            import bokeh  # noqa: F401
        except ImportError:
            return False
        return True

    @property
    def n_workers(self) -> int:
        return len(self.client.nthreads())

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing: a worker gone holds nothing
            self.client.run(clear_window_cache)
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- checks ---------------------------------------------------------------------------
    def check_workers(self, settings: TableSettings) -> None:
        """Refuse workers that run another migcodec or cannot build an arm, before any
        table is measured (a worker without migcodec fails to run the check at all)."""
        import migcodec

        try:
            answers = self.client.run(worker_check, settings.arms)
        except Exception as exc:  # raised on a worker: it cannot run migcodec code
            raise SchedulerError(
                f"the cluster's workers cannot run migcodec ({type(exc).__name__}: {exc}); "
                f"install migcodec on every worker host: {INSTALL_HINT}"
            ) from exc
        for worker, answer in answers.items():
            if answer["version"] != migcodec.__version__:
                raise SchedulerError(
                    f"worker {worker} runs migcodec {answer['version']}, this host "
                    f"{migcodec.__version__}: install the same version on every host"
                )
            if answer.get("stuck"):
                raise SchedulerError(f"worker {worker}: {answer['stuck']}")
            if answer["problems"]:
                raise SchedulerError(
                    f"worker {worker} cannot build arms: {'; '.join(answer['problems'])}; "
                    "install the same codecs on every host or leave those arms out (--arms)"
                )

    # -- stages ---------------------------------------------------------------------------
    def build_tables(
        self,
        sources: Sequence[TraceSource],
        settings: TableSettings,
        calibration: CostModel | None = None,
        task_windows: int = TASK_WINDOWS,
    ) -> list[Table]:
        """Measure a table per trace as tasks per (trace, window range, arm), plus one
        features task per range; joined in window order here. ``calibration`` is stored
        with each table as the arms' cost prior (by default this host's)."""
        labels = [a.label for a in settings.arm_list()]
        k = len(labels)
        futures, what, owner = [], [], []
        for n, source, start, stop, worker in self._place(sources, task_windows):
            # a range's tasks prefer one worker, which then decodes its windows once
            # (WindowCache); loosely: an idle worker takes them over, as does any worker
            # when that one is lost. The features task first: it is a range's longest
            for encode, features in [((), True), *(((i,), False) for i in range(k))]:
                futures.append(
                    self.client.submit(
                        measure_range,
                        source,
                        start,
                        stop,
                        settings,
                        encode,
                        features,
                        pure=False,
                        retries=TASK_RETRIES,
                        **({"workers": [worker], "allow_other_workers": True} if worker else {}),
                    )
                )
                arm = "features" if features else labels[encode[0]]
                what.append(f"measuring {source.name} windows {start}-{stop} ({arm})")
                owner.append(n)
        parts = self._gather(futures, what, "measuring tables")
        tables = []
        for n, source in enumerate(sources):
            mine = [p for p, o in zip(parts, owner, strict=True) if o == n]
            try:
                tables.append(join_parts(mine, calibration))
            except TableError as exc:
                raise TableError(f"{source.name}: {exc}") from exc
        return tables

    def evaluate(
        self,
        cells: Sequence[tuple[Table, Objective]],
        policies: Sequence[str],
        labels: Sequence[str] | None = None,
    ) -> list[Evaluation]:
        """Replay every fixed arm and each policy (a ``name[:key=value]`` specification)
        on each (table, objective) cell as tasks per (cell, policy); scored here."""
        held = self._hold([table for table, _ in cells])
        futures, what, jobs = [], [], []
        for c, (table, objective) in enumerate(cells):
            name = labels[c] if labels is not None else f"cell {c}"
            for configs in [fixed_configs(table.n_arms), *([p] for p in policies)]:
                futures.append(self._submit_replay(configs, held[id(table)], objective))
                what.append(
                    f"replaying {name}: {configs[0] if len(configs) == 1 else 'fixed arms'}"
                )
                jobs.append(c)
        results = self._gather(futures, what, "replaying policies")
        out = []
        for c, (table, objective) in enumerate(cells):
            mine = [r for r, j in zip(results, jobs, strict=True) if j == c]
            out.append(score(table, objective, [*mine[0], *(r for (r,) in mine[1:])]))
        return out

    def _submit_replay(self, configs: list, table, objective: Objective):
        """One replay task: ``configs`` on a table already held by the workers (its future),
        retried where a worker dies (replays are deterministic, so a retry is the same)."""
        return self.client.submit(
            replay_configs, configs, table, objective, pure=False, retries=TASK_RETRIES
        )

    def replay_map(self, cells: dict[Cell, tuple[Table, Objective]]) -> ReplayMap:
        """A :data:`~migcodec.selector.evaluation.grid.ReplayMap` for ``score_grid`` that
        runs each job on the cluster."""
        held = self._hold([table for table, _ in cells.values()])

        def run(jobs: list[tuple[list[dict], Cell]]) -> list[list[ReplayResult]]:
            futures, what = [], []
            for configs, cell in jobs:
                table, objective = cells[cell]
                futures.append(self._submit_replay(configs, held[id(table)], objective))
                what.append(f"replaying {len(configs)} configurations on {cell[0]} at {cell[1]}")
            return self._gather(futures, what, "replaying the grid")

        return run

    # -- internals ------------------------------------------------------------------------
    def _place(
        self, sources: Sequence[TraceSource], task_windows: int
    ) -> list[tuple[int, TraceSource, int, int, str | None]]:
        """Every range of windows as ``(source number, source, start, stop, worker)``, the
        heaviest first, each on the worker with the least work so far per thread (the
        longest-processing-time rule: the last tasks to finish are short ones, so workers
        end together). A range weighs its pages, from the trace's index."""
        ranges = []
        for n, source in enumerate(sources):
            if source.windows == 0:
                raise TableError(f"{source.name}: the trace has no windows to evaluate")
            with TraceReader(source.url) as reader:
                pages = reader.pages_per_window()
            for start, stop in window_ranges(source.windows, task_windows):
                ranges.append((int(pages[start:stop].sum()), n, source, start, stop))
        ranges.sort(key=lambda r: -r[0])  # stable: equal weights keep the corpus order
        threads = self.client.nthreads()
        load = dict.fromkeys(sorted(threads), 0.0)
        placed = []
        for weight, n, source, start, stop in ranges:
            worker = min(load, key=lambda w: load[w]) if load else None
            if worker is not None:
                load[worker] += weight / threads[worker]
            placed.append((n, source, start, stop, worker))
        return placed

    def _hold(self, tables: Sequence[Table]) -> dict[int, Any]:
        """A future per distinct table, for replay tasks to share (sent once per worker,
        not once per task)."""
        held: dict[int, Any] = {}
        for table in tables:
            if id(table) not in held:
                held[id(table)] = self.client.submit(_value, table, pure=False)
        return held

    def _gather(self, futures: list, what: list[str], stage: str) -> list:
        """Results of ``futures`` in order, with a progress bar; the first task that fails
        for good fails the stage, naming its work."""
        from distributed import as_completed
        from tqdm import tqdm

        index = {f.key: i for i, f in enumerate(futures)}
        results: list = [None] * len(futures)
        bar = tqdm(
            total=len(futures),
            desc=stage,
            unit="task",
            file=self.stderr,
            disable=not self.progress,
            leave=False,
        )
        try:
            for future, result in as_completed(futures, with_results=True, raise_errors=False):
                exc = _failure(future, result)
                if exc is not None:
                    self.client.cancel(futures)
                    raise _task_error(what[index[future.key]], exc) from exc
                results[index[future.key]] = result
                bar.update()
            return results
        finally:
            bar.close()


def _failure(future: Any, result: Any) -> BaseException | None:
    """Why a task finished without a result: what it raised (after its retries), the
    codec it refused (:class:`Refused`), or its cancellation; ``None`` when it has one."""
    if future.status == "error":
        return future.exception()
    if isinstance(result, Refused):
        return result.error
    return result if isinstance(result, BaseException) else None


def _task_error(what: str, exc: BaseException) -> Exception:
    """The error a failed task raises here, naming its work (a table's own errors keep
    their kind: the message says to rebuild; so do a codec's that failed or lied: it says
    what to do about the codec's package)."""
    if isinstance(exc, TableError):
        return TableError(f"{what}: {exc}")
    if isinstance(exc, CodecFailed):
        return type(exc)(f"{what}: {exc}")
    return RuntimeError(f"{what} failed on a worker: {type(exc).__name__}: {exc}")


#: the most ``local:N`` workers per core of this host
WORKERS_PER_CORE = 4


def _local_workers(spec: str) -> int:
    if spec == "local":
        return os.cpu_count() or 1
    text = spec.split(":", 1)[1]
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise SchedulerError(f"--scheduler {spec}: N of local:N must be a whole number >= 1")
    # each worker is a process of its own, started before any work: 100000 of them ran
    # until the machine's memory was gone, and more than a few per core only share it
    most = WORKERS_PER_CORE * (os.cpu_count() or 1)
    if n > most:
        raise SchedulerError(
            f"--scheduler {spec}: N of local:N is at most {most} here ({WORKERS_PER_CORE} "
            "worker processes per core); give a smaller N, or local for one per core"
        )
    return n


__all__ = [
    "TASK_WINDOWS",
    "Cluster",
    "SchedulerError",
    "TableSettings",
    "TraceSource",
    "WindowCache",
    "clear_window_cache",
    "measure_range",
    "window_ranges",
]
