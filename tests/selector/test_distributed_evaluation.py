"""Evaluation on a Dask cluster of 2 worker processes gives exactly what a run in process
gives: byte counts, ratios, features, every replayed choice, and (with a recorded cost
model, also stored with the tables as the arms' prior) every timing and score; a worker
killed mid-run changes nothing. Traces are read by path, ``file://`` and ``memory://``
URLs, and tables are cached where a later run, in process or not, finds them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from migcodec.cli import main
from migcodec.datasets.trace import TraceReader
from migcodec.selector import DEFAULT_POLICIES, make_objective, parse_arms, parse_policy
from migcodec.selector.costmodel import CostModel
from migcodec.selector.evaluation import build_table, evaluate, read_trace
from migcodec.selector.evaluation.cluster import (
    Cluster,
    TableSettings,
    TraceSource,
    WindowCache,
    window_ranges,
)
from migcodec.selector.evaluation.windows import trace_identity
from tests.hang_guard import within
from tests.selector.test_table_parts import assert_same_table

try:
    from distributed import WorkerPlugin
except ImportError:  # the tests that need dask skip; this keeps the module importable
    WorkerPlugin = object

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "corpus" / "traces"
TRACES = [CORPUS / "numpy", CORPUS / "qemu"]
MODEL_FILE = Path(__file__).with_name("data") / "cost-model.json"
MODEL = CostModel.load(MODEL_FILE)
ARMS_SPEC = "raw;lz4;zstd:level=1;dsa-delta"
ARMS = parse_arms(ARMS_SPEC)
SETTINGS = TableSettings.of(ARMS, repeats=1)
#: one evaluation's options, small enough for seconds: 4 arms, 1 timing, 8-window tasks
OPTIONS = [
    "--arms",
    ARMS_SPEC,
    "--repeats",
    "1",
    "--cost-model",
    str(MODEL_FILE),
    "--link",
    "1Gbit,10Gbit",
    "--task-windows",
    "8",
    "--json",
]


def local_cluster(n_workers: int = 2, silence_logs: int = logging.ERROR):
    """A cluster of ``n_workers`` worker processes on this host, one thread each, as
    ``local:N`` starts (skips the test without dask)."""
    distributed = pytest.importorskip("distributed")
    return distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        silence_logs=silence_logs,
        dashboard_address=":0",
    )


@pytest.fixture(scope="module")
def cluster():
    """A running cluster of 2 worker processes, one thread each; tests reach it by its
    address, as `--scheduler tcp://HOST:PORT` does."""
    with local_cluster() as running:
        yield running


def _sources(urls: list[str]) -> list[TraceSource]:
    return [
        TraceSource(Path(t).name, u, trace_identity(t), len(TraceReader(u)))
        for t, u in zip(TRACES, urls, strict=True)
    ]


def _run(capsys, *args: str) -> tuple[dict, str]:
    assert main(["evaluate", *args]) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def _comparable(doc: dict) -> dict:
    """The document without what differs between two measurements of the same windows:
    when and where the table was built, and the measured timings' spread."""
    for result in doc["results"]:
        for key in ("built", "path", "cached", "timing_spread"):
            result["table"].pop(key)
    return doc


def test_tables_and_replays_on_a_cluster_equal_those_made_in_process(cluster):
    urls = [str(TRACES[0]), TRACES[1].as_uri()]  # a shared path, and a URL through fsspec
    objectives = [make_objective("throughput", link=x, workers=2) for x in ("1Gbit", "10Gbit")]
    with Cluster(cluster.scheduler_address) as on_cluster:
        on_cluster.check_workers(SETTINGS)
        tables = on_cluster.build_tables(_sources(urls), SETTINGS, MODEL, task_windows=8)
        cells = [(t.modelled(MODEL), o) for t in tables for o in objectives]
        distributed_evs = on_cluster.evaluate(cells, DEFAULT_POLICIES)
    serial = [build_table(read_trace(t), ARMS, repeats=1, calibration=MODEL) for t in TRACES]
    for a, b in zip(tables, serial, strict=True):
        assert_same_table(a, b)
    serial_evs = [
        evaluate(t.modelled(MODEL), [parse_policy(p) for p in DEFAULT_POLICIES], o)
        for t in serial
        for o in objectives
    ]
    for a, b in zip(distributed_evs, serial_evs, strict=True):
        assert [r.label for r in a.results] == [r.label for r in b.results]
        assert len(a.results) == len(ARMS) + len(DEFAULT_POLICIES)
        for ra, rb in zip(a.results, b.results, strict=True):
            np.testing.assert_array_equal(ra.chosen, rb.chosen, err_msg=ra.label)
            np.testing.assert_array_equal(ra.rewards, rb.rewards, err_msg=ra.label)
            np.testing.assert_array_equal(ra.charge_s, rb.charge_s, err_msg=ra.label)
        assert [s.as_dict() for s in a.scores] == [s.as_dict() for s in b.scores]
        np.testing.assert_array_equal(a.oracle_arms, b.oracle_arms)


def test_evaluate_on_a_local_cluster_prints_the_document_of_a_run_in_process(tmp_path, capsys):
    traces = [str(t) for t in TRACES]
    serial, _ = _run(capsys, *traces, *OPTIONS, "--table-dir", str(tmp_path / "a"))
    on_cluster, err = _run(
        capsys, *traces, *OPTIONS, "--table-dir", str(tmp_path / "b"), "--scheduler", "local:2"
    )
    assert "dask: 2 workers at tcp://" in err and "dashboard http://" in err
    assert [r["table"]["cached"] for r in on_cluster["results"]] == [False] * 4
    assert len(list((tmp_path / "b").glob("selector-table-*.npz"))) == 2
    assert _comparable(on_cluster) == _comparable(serial)
    assert [r["trace"] for r in serial["results"]] == ["numpy", "numpy", "qemu", "qemu"]


def test_tables_cached_by_one_run_are_found_by_the_next_whichever_ran_where(
    cluster, tmp_path, capsys
):
    corpus = tmp_path / "corpus"
    for t in TRACES:  # the traces alone: not tables an evaluation in place cached there
        shutil.copytree(t, corpus / t.name, ignore=shutil.ignore_patterns("selector-table-*"))
    scheduler = ["--scheduler", cluster.scheduler_address]
    first, _ = _run(capsys, "--corpus", str(corpus), *OPTIONS, *scheduler)
    assert [r["table"]["cached"] for r in first["results"]] == [False] * 4
    for name in ("numpy", "qemu"):  # beside each trace, as a run in process caches them
        assert len(list((corpus / name).glob("selector-table-*.npz"))) == 1
    in_process, _ = _run(capsys, "--corpus", str(corpus), *OPTIONS)
    by_url, _ = _run(capsys, "--corpus", corpus.as_uri(), *OPTIONS, *scheduler)
    for doc in (in_process, by_url):
        assert [r["table"]["cached"] for r in doc["results"]] == [True] * 4
        assert [r["scores"] for r in doc["results"]] == [r["scores"] for r in first["results"]]


def test_a_grid_on_a_cluster_ranks_and_chooses_as_in_process(cluster, tmp_path, capsys):
    grid = tmp_path / "grid.json"
    grid.write_text(
        json.dumps({"policy": "auto", "params": {"drift": [0.05, 0.2], "value": [0.5, 2.0]}})
    )
    traces = [str(t) for t in TRACES]
    common = [*traces, *OPTIONS, "--grid", str(grid), "--table-dir", str(tmp_path / "tables")]
    serial, _ = _run(capsys, *common)
    on_cluster, _ = _run(capsys, *common, "--scheduler", cluster.scheduler_address)
    assert [t["cached"] for t in on_cluster["grid"].pop("tables")] == [True, True]
    assert [t["cached"] for t in serial["grid"].pop("tables")] == [False, False]
    assert on_cluster == serial
    ranking = serial["grid"]["ranking"]
    assert len(ranking) == 4 and [r["score"] for r in ranking] == sorted(
        (r["score"] for r in ranking), reverse=True
    )
    assert [r["held_out"] for r in serial["grid"]["leave_one_trace_out"]] == ["numpy", "qemu"]
    for row in serial["grid"]["leave_one_trace_out"]:
        assert row["config"] in [r["config"] for r in ranking]
        assert set(row["scores"]) == {"1Gbit", "10Gbit"}


class KillOnce(WorkerPlugin):
    """A worker plugin: the first table task to start, on any worker, has its worker
    killed (SIGKILL, as the kernel's out-of-memory killer would) a moment later; the
    marker file, written first, keeps the restarted worker alive."""

    name = "kill-once"

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key, start, finish, **kwargs) -> None:
        from distributed.utils import key_split

        if finish != "executing" or key_split(key) != "measure_range":
            return
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGKILL)).start()


def test_a_worker_killed_mid_run_is_replaced_and_the_tables_are_unchanged(tmp_path):
    marker = tmp_path / "killed"
    with (
        local_cluster(silence_logs=logging.CRITICAL) as running,
        Cluster(running.scheduler_address) as on_cluster,
    ):
        before = set(on_cluster.client.run(os.getpid).values())
        on_cluster.client.register_plugin(KillOnce(str(marker)))
        urls = [str(t) for t in TRACES]
        tables = on_cluster.build_tables(_sources(urls), SETTINGS, MODEL, task_windows=8)
        on_cluster.client.wait_for_workers(2, timeout=60)
        after = set(on_cluster.client.run(os.getpid).values())
    killed = int(marker.read_text())
    assert killed in before and killed not in after and len(after) == 2
    serial = [build_table(read_trace(t), ARMS, repeats=1, calibration=MODEL) for t in TRACES]
    for a, b in zip(tables, serial, strict=True):
        assert_same_table(a, b)


def test_the_scheduler_option_says_what_is_missing_or_wrong(monkeypatch, capsys):
    trace = str(TRACES[0])
    monkeypatch.setitem(sys.modules, "distributed", None)  # as without dask installed
    assert main(["evaluate", trace, "--scheduler", "local:2"]) == 2
    assert "pip install 'migcodec[distributed]'" in capsys.readouterr().err
    monkeypatch.undo()
    pytest.importorskip("distributed")
    assert main(["evaluate", trace, "--scheduler", "local:0"]) == 2
    assert "N of local:N must be a whole number >= 1" in capsys.readouterr().err
    # a process per worker, all started first: 100000 ran until memory ran out
    most = 4 * (os.cpu_count() or 1)
    assert main(["evaluate", trace, "--scheduler", "local:100000"]) == 2
    assert capsys.readouterr().err == (
        f"migcodec evaluate: --scheduler local:100000: N of local:N is at most {most} here "
        "(4 worker processes per core); give a smaller N, or local for one per core\n"
    )
    assert main(["evaluate", trace, "--scheduler", "cluster"]) == 2
    assert "give local, local:N" in capsys.readouterr().err
    assert main(["evaluate", "--workload", "zero", "--scheduler", "local:2"]) == 2
    assert "--workload runs in process" in capsys.readouterr().err


def test_a_scheduler_address_where_something_else_answers_is_one_line(capsys):
    """An HTTP server's first bytes, read as a Dask message length, had numpy asked for
    3 EiB: a MemoryError traceback."""
    import socket

    pytest.importorskip("distributed")
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def answer_http() -> None:
        with server, contextlib.ExitStack() as conns:
            server.settimeout(0.1)
            while not stop.is_set():  # the probe for a listener, then Dask's connection
                with contextlib.suppress(TimeoutError):
                    conn = conns.enter_context(server.accept()[0])
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer_http)
    thread.start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        assert main(["evaluate", str(TRACES[0]), "--scheduler", address]) == 2
    finally:
        stop.set()
        thread.join(30)
    err = capsys.readouterr().err
    assert err.startswith(f"migcodec evaluate: what answers at {address} is not a Dask scheduler (")
    assert err.endswith("); check the address, and start one with `dask scheduler`\n")
    assert err.count("\n") == 1


def test_a_scheduler_address_that_accepts_and_never_answers_ends_in_bounded_time(
    capsys, monkeypatch
):
    """Dask's timeout bounds the connection, not the handshake after it: a server that
    accepted and never spoke (``nc -l``) held ``evaluate`` forever."""
    import socket

    from migcodec.selector.evaluation import cluster

    pytest.importorskip("distributed")
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
    monkeypatch.setattr(cluster, "_HANDSHAKE_GRACE_S", 1)
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def stay_silent() -> None:
        with server, contextlib.ExitStack() as conns:
            server.settimeout(0.1)
            while not stop.is_set():  # the probe for a listener, then Dask's connection
                with contextlib.suppress(TimeoutError):
                    conns.enter_context(server.accept()[0])

    thread = threading.Thread(target=stay_silent)
    thread.start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        assert within(60, main, ["evaluate", str(TRACES[0]), "--scheduler", address]) == 2
    finally:
        stop.set()
        thread.join(30)
    assert capsys.readouterr().err == (
        f"migcodec evaluate: cannot reach the Dask scheduler at {address}: it accepted the "
        "connection and did not answer within 1 s; start one with `dask scheduler` and "
        f"workers with `dask worker {address}`\n"
    )


def test_a_scheduler_address_where_nothing_listens_is_refused_at_once(capsys):
    """Dask retries a refused connection for its whole timeout: a mistyped port was a
    30 s wait for "cannot reach"."""
    import socket

    pytest.importorskip("distributed")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    began = time.monotonic()
    assert main(["evaluate", str(TRACES[0]), "--scheduler", address]) == 2
    assert time.monotonic() - began < 10
    assert capsys.readouterr().err == (
        f"migcodec evaluate: nothing listens at {address} (connection refused); start a "
        "scheduler there with `dask scheduler`, or check the address it printed\n"
    )


@pytest.mark.parametrize("address", ["tcp://", "tcp://127.0.0.1", "tcp://:8786", "tls://h:99999"])
def test_a_scheduler_address_without_host_and_port_is_refused_before_connecting(capsys, address):
    """`tcp://` was tried, and Dask's complaint read as "what answers at tcp:// is not a
    Dask scheduler", where nothing answered."""
    assert main(["evaluate", str(TRACES[0]), "--scheduler", address]) == 2
    assert capsys.readouterr().err == (
        f"migcodec evaluate: --scheduler {address} names no scheduler's HOST:PORT; give one "
        "as `dask scheduler` prints it (e.g. tcp://127.0.0.1:8786), or local\n"
    )


def test_a_grid_is_checked_before_any_table_is_measured(tmp_path, capsys):
    trace = str(TRACES[0])
    cached = set(TRACES[0].glob("selector-table-*"))  # an evaluation in place may leave some
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"policy": "auto", "params": {"drift": [0.1]}}))
    assert main(["evaluate", trace, "--grid", str(grid), "--policies", "auto"]) == 2
    assert "drop --policies and --plot" in capsys.readouterr().err
    grid.write_text(json.dumps({"policy": "auto", "params": {"nope": [1]}}))
    assert main(["evaluate", trace, "--grid", str(grid)]) == 2
    assert capsys.readouterr().err == (
        "migcodec evaluate: policy 'auto' has no parameter 'nope'; it takes: drift, change, "
        "arm_drift, cost_drift, probe_noise, value, learn, upkeep, negligible, balance, "
        "cross_margin, batch_pages\n"
    )
    assert set(TRACES[0].glob("selector-table-*")) == cached  # nothing was measured


def test_the_library_and_cli_run_without_importing_dask(tmp_path):
    """Dask and fsspec are imported only for ``--scheduler`` and URLs: here an
    evaluation runs with both made unimportable."""
    code = f"""
import sys
sys.modules["dask"] = sys.modules["distributed"] = sys.modules["fsspec"] = None
from migcodec.cli import main
import migcodec.selector.evaluation.cluster
rc = main(["evaluate", {str(TRACES[0])!r}, "--arms", "raw;lz4", "--repeats", "1",
           "--cost-model", {str(MODEL_FILE)!r}, "--table-dir", {str(tmp_path)!r}, "--json"])
assert rc == 0, rc
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["trace"] == "numpy"


def test_evaluate_reads_a_corpus_by_memory_url_and_caches_tables_beside_it(capsys):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    root = f"/corpus-{os.getpid()}"
    for t in TRACES:
        fs.put(str(t), f"{root}/{t.name}", recursive=True)
    try:
        url = f"memory://{root}"
        first, _ = _run(capsys, "--corpus", url, *OPTIONS)
        again, _ = _run(capsys, "--corpus", url, *OPTIONS)
        local, _ = _run(capsys, *(str(t) for t in TRACES), *OPTIONS, "--table-dir", "memory://t")
    finally:
        fs.rm(root, recursive=True)
        if fs.exists("/t"):
            fs.rm("/t", recursive=True)
    paths = [r["table"]["path"] for r in first["results"]]
    assert all(p.startswith(f"memory://{root}/") and "/selector-table-" in p for p in paths)
    assert [r["table"]["cached"] for r in first["results"]] == [False] * 4
    assert [r["table"]["cached"] for r in again["results"]] == [True] * 4
    assert _comparable(first) == _comparable(again) == _comparable(local)


def test_window_ranges_cover_a_trace_and_the_window_cache_is_bounded():
    assert window_ranges(20, 8) == [(0, 8), (8, 16), (16, 20)]
    assert window_ranges(0, 8) == []
    with pytest.raises(ValueError, match="windows per task must be >= 1"):
        window_ranges(5, 0)
    source = _sources([str(t) for t in TRACES])[0]
    window_bytes = 2 * 64 * 4096 + 64 * 8  # 64 pages, their previous contents and numbers
    cache = WindowCache(max_bytes=3 * window_bytes)
    first = list(cache.windows(source, 0, 3))
    assert cache.nbytes == 3 * window_bytes
    again = list(cache.windows(source, 0, 3))
    assert all(a is b for a, b in zip(first, again, strict=True))  # served from the cache
    list(cache.windows(source, 7, 9))  # evicts the least recently used two
    assert cache.nbytes == 3 * window_bytes
    assert next(cache.windows(source, 2, 3)) is first[2]
    assert next(cache.windows(source, 0, 1)) is not first[0]
    rewritten = TraceSource(source.name, source.url, "another-identity", source.windows)
    assert next(cache.windows(rewritten, 2, 3)) is not first[2]
    fresh = TraceReader(source.url)[2]
    np.testing.assert_array_equal(first[2].pages, fresh.pages)
