"""Record QEMU's own migration stream of a small Linux guest under a memory-writing load.

    PYTHONPATH=$PWD python corpus/qemu_stream.py --check-destination \
        --out tests/datasets/data/qemu-xbzrle
    PYTHONPATH=$PWD python corpus/qemu_stream.py --no-xbzrle --out /tmp/qemu-plain

Boots a QEMU TCG guest (128 MiB; Debian's kernel and a busybox initramfs, see
``qemu_guest.py``) whose /init rewrites runs of pages of a tmpfs "ledger" file in place
(each page changes in a few bytes: XBZRLE's case), and writes, sorts, gzips, zero-fills
and deletes other files. Once the load runs, the guest is migrated with
``migrate "exec:cat > FILE"`` with the ``xbzrle`` capability on (unless
``--no-xbzrle``). The first pass over RAM runs at ``--bulk-bandwidth``; from the first
dirty-bitmap sync after it, ``max-bandwidth`` is ``--bandwidth``, and the downtime limit
of 1 ms keeps QEMU iterating (it completes when the dirty pages left fit in bandwidth x
downtime) until ``--iterations`` syncs have passed; then the downtime limit is raised
and the migration completes.

Writes ``OUT.stream.xz`` (the stream, xz-compressed; ``migcodec trace import-qemu``
reads it as it is) and ``OUT.json``: the settings, QEMU's ``query-migrate`` counters at
every dirty-bitmap sync the script saw and at the end, the final ``info migrate`` text,
and the sync points from QEMU's trace log (events ``savevm_section_start`` and
``migration_bitmap_sync_end``): for each sync, how many RAM sections of kind PART or END
had been written before it, which ``migcodec trace import-qemu --sync-points OUT.json``
uses to cut windows at QEMU's own iterations.

``--check-destination`` also restores the stream in a second QEMU (``-incoming
"exec:cat FILE"``, paused with ``-S``), dumps its RAM with ``pmemsave`` and compares it
page by page with the RAM that ``migcodec.datasets.qemu_stream.reconstruct_ram`` rebuilds
from the stream (every XBZRLE page decoded by migcodec's ``xbzrle`` decoder); the counts
go into ``OUT.json``.

Needs qemu-system-x86 and busybox-static (Debian packages); the kernel is fetched with
``apt-get download`` when /boot has none. Run as a user who may run QEMU; no root needed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import lzma
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from qemu_guest import Missing, debian_kernel, write_initramfs

from migcodec.hashing import seal

MiB = 1 << 20

#: The guest's /init. The ledger is LEDGER_PAGES lines of 4095 characters and a newline,
#: one per page; two versions of it differ in a few bytes per page. Each round copies a
#: random run of pages of one version over the ledger in place (``dd conv=notrunc``): the
#: same tmpfs pages change in a few bytes, XBZRLE's case. Every other round also makes
#: whole new pages (text, sorted text, gzip output), zero pages, or frees pages (rm; the
#: kernel zeroes freed pages, ``init_on_free=1``).
GUEST_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t devtmpfs dev /dev
mount -t tmpfs -o size=40m tmpfs /w
n=@LEDGER_PAGES@
for v in 0 1; do
  awk -v v=$v -v n=$n 'BEGIN { for (i = 0; i < n; i++)
      printf "%-4095s\n", "ledger page " i " version " v " sum " (i * (v + 7)) % 9973 }' >/w/v$v
done
cp /w/v0 /w/ledger
echo "workload running"
g=0
while true; do
  g=$((g + 1))
  c=$((RANDOM % n + 1))
  s=$((RANDOM % (n - c + 1)))
  dd if=/w/v$((g % 2)) of=/w/ledger bs=4096 skip=$s seek=$s count=$c conv=notrunc 2>/dev/null
  case $((g % 8)) in
    0) dd if=/dev/zero of=/w/zero bs=4k count=128 2>/dev/null ;;
    2) seq $((g * 37 % 3000 + 300)) | sed "s/^/row $g: /" > /w/text ;;
    4) rm -f /w/zero; sort -r /w/text > /w/sorted ;;
    6) gzip -c /w/text > /w/gz ;;
  esac
  sleep 0.2
done
"""


class Qmp:
    """A minimal QMP client: one command at a time, events set aside."""

    def __init__(self, path: Path, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock = socket.socket(socket.AF_UNIX)
                self._sock.connect(str(path))
                break
            except OSError:
                self._sock.close()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"QEMU's QMP socket {path} did not open") from None
                time.sleep(0.1)
        self._file = self._sock.makefile("rw")
        json.loads(self._file.readline())  # the greeting
        self.events: list[dict[str, Any]] = []
        self("qmp_capabilities")

    def __call__(self, command: str, **arguments: Any) -> Any:
        self._file.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
        self._file.flush()
        while True:
            line = self._file.readline()
            if not line:
                raise RuntimeError(f"QEMU closed its QMP socket during {command}")
            reply = json.loads(line)
            if "event" in reply:
                self.events.append(reply)
            elif "error" in reply:
                raise RuntimeError(f"QMP {command}: {reply['error'].get('desc', reply)}")
            else:
                return reply.get("return")

    def hmp(self, line: str) -> str:
        return str(self("human-monitor-command", **{"command-line": line}))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def guest_argv(kernel: Path, initrd: Path, mem_mb: int, console: Path) -> list[str]:
    """The guest's command line; the destination of ``--check-destination`` uses the same
    one (its RAM blocks and option ROMs must match the stream's)."""
    return [
        "qemu-system-x86_64", "-machine", "pc,accel=tcg", "-smp", "1", "-m", str(mem_mb),
        "-kernel", str(kernel), "-initrd", str(initrd), "-nodefaults", "-display", "none",
        "-no-reboot", "-serial", f"file:{console}",
        "-append", "console=ttyS0 panic=-1 quiet init_on_free=1",
    ]  # fmt: skip


def start(argv: list[str], scratch: Path, name: str) -> tuple[subprocess.Popen, Qmp]:
    if shutil.which(argv[0]) is None:
        raise Missing(f"{argv[0]} is not installed: apt-get install qemu-system-x86")
    sock = scratch / f"{name}.qmp"
    with open(scratch / f"{name}.log", "wb") as log:
        proc = subprocess.Popen(
            [*argv, "-qmp", f"unix:{sock},server=on,wait=off"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        return proc, Qmp(sock)
    except RuntimeError:
        stop(proc)
        raise


def stop(proc: subprocess.Popen) -> None:
    """End a QEMU this script started (its own process group), SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_for(ready, what: str, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"QEMU exited with status {proc.returncode} waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.1)


RAM_KEYS = ("transferred", "normal", "duplicate", "normal-bytes", "dirty-sync-count",
            "remaining", "dirty-pages-rate", "precopy-bytes", "downtime-bytes")  # fmt: skip
XBZRLE_KEYS = ("bytes", "pages", "cache-miss", "overflow", "encoding-rate")


def snapshot(info: dict[str, Any], t0: float) -> dict[str, Any]:
    """The counters of one ``query-migrate`` answer that the comparison reads."""
    ram = info.get("ram", {})
    cache = info.get("xbzrle-cache", {})
    return {
        "t": round(time.monotonic() - t0, 3),
        "status": info.get("status"),
        "ram": {k: ram[k] for k in RAM_KEYS if k in ram},
        "xbzrle": {k: cache[k] for k in XBZRLE_KEYS if k in cache},
    }


def sync_points(trace_log: Path) -> list[int]:
    """For each dirty-bitmap sync in QEMU's trace log, the number of RAM sections written
    before it (the log's ``savevm_section_start ram`` lines). The first sync, made while
    setting up, comes before any section."""
    points, sections = [], 0
    for line in trace_log.read_text(errors="replace").splitlines():
        if re.search(r"savevm_section_start ram,", line):
            sections += 1
        elif "migration_bitmap_sync_end" in line:
            points.append(sections)
    return points


def migrate(args: argparse.Namespace, scratch: Path, out: Path) -> dict[str, Any]:
    kernel = debian_kernel()
    initrd = scratch / "initrd.cpio"
    write_initramfs(initrd, GUEST_INIT.replace("@LEDGER_PAGES@", str(args.ledger_pages)))
    console = scratch / "console.log"
    trace_log = scratch / "trace.log"
    argv = guest_argv(kernel, initrd, args.mem, console)
    traced = [
        *argv, "-trace", "enable=savevm_section_start",
        "-trace", "enable=migration_bitmap_sync_end", "-D", str(trace_log),
    ]  # fmt: skip
    stream = scratch / "stream.bin"
    proc, qmp = start(traced, scratch, "source")
    try:
        running = lambda: console.exists() and b"workload running" in console.read_bytes()  # noqa: E731
        wait_for(running, "the guest's workload", 300, proc)
        time.sleep(args.warmup)
        qmp(
            "migrate-set-capabilities",
            capabilities=[{"capability": "xbzrle", "state": args.xbzrle}],
        )
        params = {"max-bandwidth": args.bulk_bandwidth, "downtime-limit": args.downtime_ms}
        if args.xbzrle:
            params["xbzrle-cache-size"] = args.cache_mb * MiB
        qmp("migrate-set-parameters", **params)
        t0 = time.monotonic()
        qmp("migrate", uri=f"exec:cat > {stream}")
        snaps: list[dict[str, Any]] = []
        released = slowed = False
        while True:
            info = qmp("query-migrate")
            snap = snapshot(info, t0)
            syncs = snap["ram"].get("dirty-sync-count", 0)
            if not snaps or syncs != snaps[-1]["ram"].get("dirty-sync-count"):
                snaps.append(snap)
            if info.get("status") in ("completed", "failed", "cancelled"):
                snaps.append(snap)
                break
            if not slowed and syncs >= 2:  # the first pass is done: the link of the iterations
                qmp("migrate-set-parameters", **{"max-bandwidth": args.bandwidth})
                slowed = True
            if not released and (syncs > args.iterations or snap["t"] > args.max_seconds):
                # enough iterations: let it converge (the threshold is bandwidth x downtime)
                qmp("migrate-set-parameters", **{"downtime-limit": 60000})
                released = True
            time.sleep(0.05)
        if info["status"] != "completed":
            raise RuntimeError(f"migration ended {info['status']}: {info.get('error-desc', '')}")
        text = qmp.hmp("info migrate")
        qmp("quit")
    finally:
        qmp.close()
        stop(proc)
    with open(stream, "rb") as src, lzma.open(f"{out}.stream.xz", "wb", preset=6) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    result = {
        "qemu": subprocess.run(
            [argv[0], "--version"], capture_output=True, text=True
        ).stdout.splitlines()[0],
        "guest": {"mem_mb": args.mem, "ledger_pages": args.ledger_pages, "kernel": kernel.name},
        "xbzrle": args.xbzrle,
        "max_bandwidth": args.bandwidth,
        "bulk_max_bandwidth": args.bulk_bandwidth,
        "downtime_limit_ms": args.downtime_ms,
        "xbzrle_cache_mb": args.cache_mb if args.xbzrle else None,
        "stream_bytes": stream.stat().st_size,
        "sync_points": sync_points(trace_log),
        "query_migrate": snaps,
        "info_migrate": text,
        "command": "python corpus/qemu_stream.py " + " ".join(sys.argv[1:]),
    }
    if args.check_destination:
        result["destination"] = check_destination(argv, scratch, stream, args.mem)
    return result


def check_destination(argv: list[str], scratch: Path, stream: Path, mem_mb: int) -> dict:
    """Restore ``stream`` in a paused QEMU, dump its RAM, and compare it page by page with
    the RAM migcodec reconstructs from the stream. The legacy window 0xa0000-0xfffff is
    left out: there the guest's physical address space shows VGA and BIOS mappings, not
    ``pc.ram``."""
    import numpy as np

    from migcodec.datasets.qemu_stream import reconstruct_ram

    console = scratch / "dest-console.log"
    dest_argv = [*argv[: argv.index("-serial")], "-serial", f"file:{console}",
                 *argv[argv.index("-serial") + 2:]]  # fmt: skip
    proc, qmp = start([*dest_argv, "-S", "-incoming", f"exec:cat {stream}"], scratch, "dest")
    dump = scratch / "dest-ram.bin"
    try:

        def done() -> bool:
            return qmp("query-migrate").get("status") in ("completed", "failed")

        wait_for(done, "the destination to load the stream", 600, proc)
        status = qmp("query-migrate")["status"]
        if status != "completed":
            raise RuntimeError(f"the destination QEMU could not load the stream ({status})")
        qmp("pmemsave", val=0, size=mem_mb * MiB, filename=str(dump))
        qmp("quit")
    finally:
        qmp.close()
        stop(proc)
    ram, stats = reconstruct_ram(stream)
    restored = np.fromfile(dump, dtype=np.uint8).reshape(-1, 4096)
    ours = ram["pc.ram"].reshape(-1, 4096)[: restored.shape[0]]
    legacy = np.zeros(restored.shape[0], dtype=bool)
    legacy[0xA0000 // 4096 : 0x100000 // 4096] = True
    differ = np.flatnonzero(((ours != restored).any(axis=1)) & ~legacy)
    return {
        "pages_compared": int((~legacy).sum()),
        "pages_differing": int(differ.size),
        "first_differing": [int(p) for p in differ[:8]],
        "stream": stats,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", required=True, help="output prefix: OUT.stream.xz and OUT.json")
    p.add_argument("--no-xbzrle", dest="xbzrle", action="store_false", help="XBZRLE off")
    p.add_argument("--mem", type=int, default=128, help="guest RAM in MiB")
    p.add_argument("--ledger-pages", type=int, default=1536, help="pages the load rewrites")
    p.add_argument(
        "--bandwidth", type=int, default=MiB, help="max-bandwidth after the first pass, bytes/s"
    )
    p.add_argument(
        "--bulk-bandwidth", type=int, default=32 * MiB, help="max-bandwidth of the first pass"
    )
    p.add_argument("--downtime-ms", type=int, default=1, help="downtime-limit until released")
    p.add_argument("--cache-mb", type=int, default=16, help="xbzrle-cache-size in MiB")
    p.add_argument("--iterations", type=int, default=8, help="syncs before convergence is let")
    p.add_argument("--max-seconds", type=float, default=60, help="... or seconds of migration")
    p.add_argument("--warmup", type=float, default=3, help="seconds of load before migrating")
    p.add_argument("--check-destination", action="store_true", help="restore and compare RAM")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="migcodec-qemu-stream-"))
    try:
        result = migrate(args, scratch, out)
    except (Missing, RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        console = scratch / "console.log"
        tail = console.read_text(errors="replace")[-600:] if console.exists() else ""
        print(
            f"qemu_stream.py: {exc} (logs in {scratch}); the guest's console ends:\n{tail}",
            file=sys.stderr,
        )
        return 1
    # sealed: `migcodec trace import-qemu --sync-points` refuses a recording changed since
    Path(f"{out}.json").write_text(json.dumps(seal(result), indent=1) + "\n")
    shutil.rmtree(scratch, ignore_errors=True)
    size = os.path.getsize(f"{out}.stream.xz")
    print(
        f"{out}.stream.xz: {result['stream_bytes'] / MiB:.1f} MiB stream "
        f"({size / MiB:.1f} MiB xz), {len(result['sync_points'])} dirty-bitmap syncs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
