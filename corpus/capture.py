"""Capture one corpus trace: start a real program, put it under load, record its dirty pages.

    PYTHONPATH=$PWD python corpus/capture.py PROGRAM --out corpus/traces/PROGRAM

PROGRAM is one of redis, memcached, postgres, qemu, node, numpy, jvm. Each starts the program
on loopback ports or in a scratch directory, starts its load, lets it warm up, then runs
``migcodec trace capture ... --max-pages K`` on the program's process and finally stops
everything it started (load first, then the program) and removes its scratch directory.
The defaults of each program (windows, interval, K >= 64) keep a trace within 6 MiB; every
one can be overridden on the command line. Needs root (capture reads /proc/PID/mem) and the
packages listed in corpus/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qemu_guest import Missing, debian_kernel, write_initramfs

HERE = Path(__file__).resolve().parent
MiB = 1 << 20


@dataclass
class Target:
    """What to capture: a process and the capture options that select its memory."""

    pid: int
    capture_args: list[str] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class Program:
    """A program under load, and the capture settings that keep its trace small."""

    start: Callable[[Stage], Target]
    windows: int
    interval_ms: float
    max_pages: int
    warmup_s: float
    about: str
    #: ``(busy s, paused s)``: the load is stopped (SIGSTOP) and resumed in this rhythm
    #: during the capture, so the trace also has idle windows and the ramp out of them
    duty: tuple[float, float] | None = None


class Stage:
    """Processes started for one capture, stopped in reverse order however it ends."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self.loads: list[subprocess.Popen] = []

    def spawn(self, name: str, argv: list[str], *, load: bool = False, **kw) -> subprocess.Popen:
        """Start ``argv`` in its own process group, its output in the scratch directory;
        ``load`` marks a load generator (paused and resumed by a program's duty cycle)."""
        exe = shutil.which(argv[0]) if os.sep not in argv[0] else argv[0]
        if exe is None:
            raise Missing(f"{argv[0]} is not installed; see corpus/README.md for its package")
        with open(self.scratch / f"{name}.log", "wb") as log:  # the child keeps its own copy
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", subprocess.STDOUT)
            proc = subprocess.Popen([exe, *argv[1:]], start_new_session=True, **kw)
        self._procs.append((name, proc))
        if load:
            self.loads.append(proc)
        return proc

    def signal_loads(self, sig: signal.Signals) -> None:
        """Send ``sig`` to every load generator still running (SIGSTOP pauses, SIGCONT
        resumes: the load's own state survives the pause)."""
        for proc in self.loads:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)

    def check(self) -> None:
        """Raise if a started process already died (its log says why)."""
        for name, proc in self._procs:
            if proc.poll() is not None:
                log = (self.scratch / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with status {proc.returncode}:\n{log}")

    def stop(self) -> None:
        """SIGTERM each process group, last started first; SIGKILL what is left after 15 s."""
        for _name, proc in reversed(self._procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                    os.killpg(proc.pid, signal.SIGCONT)  # a paused load must see the TERM
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=15)


# -- helpers -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(ready: Callable[[], bool], what: str, stage: Stage, timeout: float) -> None:
    """Poll ``ready`` (a server that is starting has nothing to wait on but its port)."""
    deadline = time.monotonic() + timeout
    while not ready():
        stage.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s; see {stage.scratch}")
        time.sleep(0.1)


def port_open(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    return ready


# -- the programs --------------------------------------------------------------------------------
def redis(stage: Stage) -> Target:
    """redis-server under two redis-benchmark loads: the standard commands (strings, lists,
    sets, hashes, sorted sets) on 500k random keys, and SETs of random numeric values."""
    port = free_port()
    server = stage.spawn(
        "redis-server",
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--maxmemory", "384mb", "--maxmemory-policy", "allkeys-lru",
         "--dir", str(stage.scratch)],
    )  # fmt: skip
    wait_until(port_open(port), "redis-server", stage, 30)
    bench = ["redis-benchmark", "-p", str(port), "-q", "-l"]
    tests = "set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100"
    stage.spawn(
        "bench-mix",
        [*bench, "-c", "4", "-P", "4", "-r", "500000", "-d", "200", "-t", tests],
        load=True,
    )
    stage.spawn(
        "bench-random",
        [*bench, "-c", "2", "-P", "4", "-r", "1000000",
         "SET", "rnd:__rand_int__", "v:__rand_int__:__rand_int__:__rand_int__:__rand_int__"],
        load=True,
    )  # fmt: skip
    return Target(server.pid)


def memcached(stage: Stage) -> Target:
    """memcached (256 MB cache, 2 threads) under memcaslap: 9:1 get/set, values of 64 B to
    8 KiB, keys overwritten (10%), some expiring. Every get bumps its item's LRU time, so
    reads dirty pages too. The load pauses in a rhythm (see ``duty``), for idle windows."""
    port = free_port()
    server = stage.spawn(
        "memcached",
        ["memcached", "-u", "nobody", "-l", "127.0.0.1", "-p", str(port), "-m", "256", "-t", "2"],
    )
    wait_until(port_open(port), "memcached", stage, 30)
    config = stage.scratch / "memcaslap.cfg"
    config.write_text(
        "key\n16 64 1\n"
        "value\n64 512 0.5\n512 2048 0.35\n2048 8192 0.15\n"
        "cmd\n0 0.1\n1 0.9\n"  # 0 = set, 1 = get: the proportions
    )
    stage.spawn(
        "memcaslap",
        ["memcaslap", "-s", f"127.0.0.1:{port}", "-F", str(config), "-T", "1", "-c", "16",
         "-t", "30m", "-o", "0.1", "-e", "0.05"],
        load=True,
    )  # fmt: skip
    return Target(server.pid)


def postgres(stage: Stage) -> Target:
    """PostgreSQL under pgbench's TPC-B-like transactions (scale 10, 4 clients, at most
    400 transactions/s: a busy OLTP database, not a saturated one).

    The captured process is one pgbench connection's backend, with shared memory: its own
    memory plus every page of the shared buffer pool it has touched. A backend maps a
    shared page on first use, so its view grows towards the whole pool as it works.
    """
    bindir = _pg_bindir()
    data = stage.scratch / "pgdata"
    shutil.chown(stage.scratch, "postgres", "postgres")
    as_pg = {"user": "postgres", "group": "postgres", "cwd": stage.scratch}
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True, stdout=subprocess.DEVNULL, **as_pg,
    )  # fmt: skip
    port = str(free_port())
    sock = str(stage.scratch)
    stage.spawn(
        "postgres",
        [str(bindir / "postgres"), "-D", str(data), "-p", port, "-k", sock, "-c",
         "listen_addresses=", "-c", "shared_buffers=128MB", "-c", "fsync=off",
         "-c", "synchronous_commit=off"],
        **as_pg,
    )  # fmt: skip
    conn = ["-h", sock, "-p", port, "-U", "postgres"]

    def accepting() -> bool:
        probe = subprocess.run([str(bindir / "pg_isready"), *conn], capture_output=True)
        return probe.returncode == 0

    wait_until(accepting, "postgres", stage, 60)
    subprocess.run(
        [str(bindir / "pgbench"), "-i", "-s", "10", "-q", *conn, "postgres"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **as_pg,
    )  # fmt: skip
    stage.spawn(
        "pgbench",
        [
            str(bindir / "pgbench"),
            "-c",
            str(PG_CLIENTS),
            "-j",
            "2",
            "-T",
            "3600",
            *conn,
            "postgres",
        ],
        **as_pg,
        load=True,
    )
    # pgbench first opens a connection of its own to check the tables, then one per
    # client: wait for all the clients' backends, which live as long as the run
    query = "select pid from pg_stat_activity where application_name = 'pgbench' order by pid"
    pids: list[int] = []

    def backends() -> bool:
        out = subprocess.run(
            [str(bindir / "psql"), *conn, "-Atc", query, "postgres"], capture_output=True
        ).stdout.split()
        pids[:] = [int(x) for x in out]
        return len(pids) == PG_CLIENTS

    wait_until(backends, "the pgbench backends", stage, 60)
    return Target(pids[0], ["--include-shared"], "a pgbench backend, with shared memory")


PG_CLIENTS = 4


def _pg_bindir() -> Path:
    for found in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (found / "pgbench").exists():
            return found
    raise Missing("PostgreSQL is not installed: apt-get install postgresql")


GUEST_MB = 256


def qemu(stage: Stage) -> Target:
    """A QEMU TCG guest (256 MiB, one vCPU) running Debian's kernel with a busybox initramfs
    whose shell loop writes files to tmpfs (random, zero, text), sorts and compresses them,
    and deletes old ones. The captured memory is exactly the guest's RAM mapping."""
    kernel = _kernel(stage)
    initrd = stage.scratch / "initrd.cpio"
    _write_initramfs(initrd)
    console = stage.scratch / "console.log"
    vm = stage.spawn(
        "qemu",
        ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-smp", "1", "-m", str(GUEST_MB),
         "-kernel", str(kernel), "-initrd", str(initrd), "-nodefaults", "-display", "none",
         "-no-reboot", "-serial", f"file:{console}",
         "-append", "console=ttyS0 panic=-1 quiet"],
    )  # fmt: skip

    def running() -> bool:
        return console.exists() and b"workload running" in console.read_bytes()

    wait_until(running, "the guest's workload", stage, 300)
    lo, hi = _guest_ram(vm.pid, GUEST_MB * MiB)
    return Target(vm.pid, ["--address-range", f"{lo:x}-{hi:x}"], "guest RAM mapping")


def _kernel(stage: Stage) -> Path:
    """A Debian kernel image (see ``qemu_guest.debian_kernel``)."""
    return debian_kernel()


GUEST_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t devtmpfs dev /dev
mount -t tmpfs -o size=112m tmpfs /w
echo "workload running"
i=0
while true; do
  i=$((i + 1))
  slot=$((i % 12))
  case $((i % 4)) in
    0) dd if=/dev/urandom of=/w/rand$slot bs=4k count=$((RANDOM % 1024 + 1)) 2>/dev/null ;;
    1) dd if=/dev/zero of=/w/zero$slot bs=4k count=$((RANDOM % 2048 + 1)) 2>/dev/null ;;
    2) seq $((RANDOM * 3)) | sed "s/^/row $i: /" > /w/text$slot
       sort -r /w/text$slot > /w/sorted$slot ;;
    3) cat /w/text* 2>/dev/null | gzip -c > /w/gz$slot
       rm -f /w/rand$(((slot + 6) % 12)) ;;
  esac
  [ $((i % 16)) -eq 0 ] && sleep 1
done
"""


def _write_initramfs(path: Path) -> None:
    """The guest's initramfs: a static busybox and the workload above as /init."""
    write_initramfs(path, GUEST_INIT)


def _guest_ram(pid: int, size: int) -> tuple[int, int]:
    """The anonymous mapping QEMU allocated for guest RAM: the smallest private writable
    one at least ``size`` bytes long (QEMU rounds and aligns it, never shrinks it)."""
    best = None
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            anonymous = len(parts) < 6
            fits = parts[1].startswith("rw") and anonymous and hi - lo >= size
            if fits and (best is None or hi - lo < best[1] - best[0]):
                best = (lo, hi)
    if best is None:
        raise RuntimeError(f"no anonymous mapping of {size >> 20} MiB in QEMU process {pid}")
    return best


def node(stage: Stage) -> Target:
    """A Node.js HTTP service that builds and caches JSON documents per user, under a
    client whose request rate cycles from idle to a burst (corpus/node_service.js)."""
    port = str(free_port())
    script = str(HERE / "node_service.js")
    server = stage.spawn("node-server", ["node", script, "server", port])
    wait_until(port_open(int(port)), "the node service", stage, 30)
    stage.spawn("node-client", ["node", script, "client", port], load=True)
    return Target(server.pid)


def numpy_job(stage: Stage) -> Target:
    """An iterative numpy stencil with a moving hot spot, periodic full sweeps and pandas
    group-bys over a changing table (corpus/numpy_job.py)."""
    job = stage.spawn("numpy-job", [sys.executable, str(HERE / "numpy_job.py")])
    ready = stage.scratch / "numpy-job.log"
    wait_until(lambda: b"running" in ready.read_bytes(), "the numpy job", stage, 60)
    return Target(job.pid)


def jvm(stage: Stage) -> Target:
    """A Java order-book service with its load threads in one JVM (256 MiB heap, G1), whose
    rate cycles from idle to a burst (corpus/JvmService.java, run from source)."""
    source = str(HERE / "JvmService.java")
    job = stage.spawn("jvm", ["java", "-Xms256m", "-Xmx256m", "-XX:+UseG1GC", source])
    ready = stage.scratch / "jvm.log"
    wait_until(lambda: b"running" in ready.read_bytes(), "the JVM service", stage, 60)
    return Target(job.pid)


PROGRAMS: dict[str, Program] = {
    # windows, interval ms, max pages, warm-up s. K is at least 64, so a policy's probe of a
    # window sees a sample of what is stored, not all of it; the number of windows keeps a
    # trace within 6 MiB (pages of floats or random bytes barely compress, so numpy and qemu
    # have fewer windows; numpy's quiet stretches store next to nothing)
    "redis": Program(redis, 50, 500, 64, 5, "redis-server + redis-benchmark"),
    "memcached": Program(memcached, 48, 200, 64, 5, "memcached + memcaslap", duty=(3, 2)),
    "postgres": Program(postgres, 60, 200, 128, 5, "postgres + pgbench (TPC-B-like)"),
    "qemu": Program(qemu, 30, 1000, 64, 10, "QEMU TCG guest, busybox workload"),
    "node": Program(node, 60, 100, 64, 3, "node HTTP JSON service + client"),
    "numpy": Program(numpy_job, 28, 500, 64, 3, "numpy stencil + pandas group-by"),
    "jvm": Program(jvm, 60, 200, 64, 5, "JVM order-book service + load threads"),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("program", choices=sorted(PROGRAMS))
    p.add_argument("--out", required=True, help="trace directory (replaced if it exists)")
    p.add_argument("--windows", type=int, help="windows to capture (default per program)")
    p.add_argument("--interval", type=float, help="window length in ms (default per program)")
    p.add_argument("--max-pages", type=int, help="pages stored per window (default per program)")
    p.add_argument("--warmup", type=float, help="seconds of load before the first window")
    p.add_argument("--seed", type=int, default=0, help="seed of the --max-pages samples")
    args = p.parse_args(argv)
    prog = PROGRAMS[args.program]
    if os.geteuid() != 0:
        print("capture.py: run as root: capture reads other processes' memory", file=sys.stderr)
        return 1
    migcodec = shutil.which("migcodec")
    if migcodec is None:
        print(
            "capture.py: the migcodec command is not installed (pip install -e .)", file=sys.stderr
        )
        return 1
    scratch = Path(tempfile.mkdtemp(prefix=f"migcodec-{args.program}-"))
    scratch.chmod(0o755)
    stage = Stage(scratch)
    try:
        target = prog.start(stage)
        time.sleep(prog.warmup_s if args.warmup is None else args.warmup)  # let the load settle
        stage.check()
        cmd = [
            migcodec, "trace", "capture", "--pid", str(target.pid),
            "--windows", str(args.windows or prog.windows),
            "--interval", str(args.interval or prog.interval_ms),
            "--max-pages", str(args.max_pages or prog.max_pages),
            "--seed", str(args.seed), "--out", args.out, "--force", "--quiet",
            *target.capture_args,
        ]  # fmt: skip
        what = f" ({target.note})" if target.note else ""
        print(f"capturing {prog.about}, pid {target.pid}{what}", flush=True)
        capture = subprocess.Popen(cmd)
        if prog.duty is not None:
            busy, paused = prog.duty
            while capture.poll() is None:  # the load's rhythm, until the capture ends
                with contextlib.suppress(subprocess.TimeoutExpired):
                    capture.wait(timeout=busy)
                stage.signal_loads(signal.SIGSTOP)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    capture.wait(timeout=paused)
                stage.signal_loads(signal.SIGCONT)
        code = capture.wait()
        stage.check()  # a load that died mid-capture would make the trace misleading
        return code
    except (Missing, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"capture.py {args.program}: {exc}", file=sys.stderr)
        return 1
    finally:
        stage.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
