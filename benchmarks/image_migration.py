"""``--codec auto`` against codecs picked by hand, migrating a real program's memory image.

    python benchmarks/image_migration.py [--image PATH] [--mib 256] [--links 1Gbit,10Gbit]
        [--codecs none,lz4,zstd,zlib-ng,auto] [--runs 8] [--json] [--markdown PATH]

Without ``--image`` (or when it does not exist yet) an image is made first: a
``redis-server`` (Debian's package ``redis-server``) is filled by ``redis-benchmark -d 400
-t set,lpush`` with keys and requests in proportion to ``--mib`` (``redis_load``), and
``--mib`` MiB of its resident anonymous memory (its heap: keys, values, lists and the
allocator's bookkeeping), in address order, are written to the image file; the server is
then stopped. Needs root or ptrace rights over the server, as ``migcodec trace capture``
does.

Each codec then migrates the image with ``migcodec migrate --memory-file IMAGE
--keep-contents --dirty-rate 0`` (one pre-copy pass over memory that does not change: the
bulk of a real migration, where the codec's throughput decides its length), ``--runs``
times per link, the codecs interleaved and their order reversed every run so that the
machine's drift favours none. Each command is a new process, as a user runs it. Printed per
link: each codec's median total time with its min-max, its median over the best hand-picked
codec's (``auto`` is compared with the codec that was fastest here, on the same runs), and
what ``auto`` sent with which codec in its last run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from migcodec.units import format_size


def redis_load(mib: int) -> list[str]:
    """How the image's program is filled: SET and LPUSH of 400-byte values, 1600 requests
    on 1200 random keys per MiB of image (256 MiB: 409600 on 307200), so that its heap
    fills about the image whatever its size."""
    return ["-n", str(1600 * mib), "-r", str(1200 * mib), "-d", "400", "-t", "set,lpush", "-q"]


DEFAULT_CODECS = "none,lz4,zstd,zlib-ng,auto"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not start on port {port}")
        time.sleep(0.1)


def dump_resident_memory(pid: int, nbytes: int, out: Path) -> int:
    """Write ``nbytes`` of process ``pid``'s resident pages of writable, private, anonymous
    memory (the mappings ``migcodec trace capture`` reads by default), in address order, to
    ``out`` (zero pages after them when it has fewer); returns how many bytes were its own."""
    from migcodec.datasets.capture.procfs import MappingFilter, ProcFiles, read_maps

    files = ProcFiles(pid)
    try:
        want = nbytes // files.page_size
        image = np.zeros((want, files.page_size), dtype=np.uint8)
        got = 0
        for mapping in MappingFilter().select(read_maps(pid)):  # as a capture reads
            if got == want:
                break
            offsets, _entries = files.present(mapping.start, mapping.end)
            vpns = mapping.start // files.page_size + offsets
            vpns = vpns[: want - got]
            files.read_pages(vpns, out=image[got:])
            got += vpns.size
        image.tofile(out)
        return got * files.page_size
    finally:
        files.close()


def make_redis_image(path: Path, mib: int) -> int:
    """Fill a redis-server (:func:`redis_load`) and dump ``mib`` MiB of its memory to ``path``."""
    server, bench = shutil.which("redis-server"), shutil.which("redis-benchmark")
    if server is None or bench is None:
        sys.exit(
            "image_migration.py: redis-server and redis-benchmark are needed to make an "
            "image: install Debian's redis-server and redis-tools, or give --image PATH"
        )
    port = _free_port()
    with tempfile.TemporaryDirectory() as scratch:
        proc = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", scratch],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            _wait_for_port(port, proc)
            load = redis_load(mib)
            subprocess.run([bench, "-p", str(port), *load], check=True, capture_output=True)
            return dump_resident_memory(proc.pid, mib << 20, path)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def migrate(image: Path, codec: str, link: str) -> dict:
    """One ``migcodec migrate`` of the image in a new process: its JSON report."""
    command = [
        sys.executable, "-c", "from migcodec.cli import main; raise SystemExit(main())", "migrate",
        "--memory-file", str(image), "--keep-contents", "--dirty-rate", "0",
        "--codec", codec, "--link", link, "--json", "--quiet",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    report = json.loads(done.stdout)
    if not report["verified"]:
        raise RuntimeError(f"{codec} at {link}: {report['error']}")
    return report


def measure(image: Path, codecs: list[str], links: list[str], runs: int) -> dict:
    """Every codec ``runs`` times per link, interleaved (the order reversed every run)."""
    results: dict = {}
    for link in links:
        times: dict[str, list[float]] = {c: [] for c in codecs}
        last: dict[str, dict] = {}
        for run in range(runs):
            for codec in codecs if run % 2 == 0 else codecs[::-1]:
                report = migrate(image, codec, link)
                times[codec].append(report["total_time_s"])
                last[codec] = report["pages_by_codec"]
        medians = {c: statistics.median(t) for c, t in times.items()}
        fixed = [c for c in codecs if c != "auto"]
        best = min(fixed, key=medians.__getitem__) if fixed else None
        results[link] = {
            "best_fixed": best,
            "codecs": {
                c: {
                    "median_s": medians[c],
                    "min_s": min(times[c]),
                    "max_s": max(times[c]),
                    "vs_best_fixed": medians[c] / medians[best] if best else None,
                    "pages_by_codec": last[c],
                }
                for c in codecs
            },
        }
    return results


def render(results: dict, image: dict, runs: int, command: str) -> str:
    lines = [
        "# `--codec auto` on a real program's memory image",
        "",
        f"Written by `{command}` on {os.cpu_count()} cores, both ends of each migration on "
        "this one host (`migcodec migrate`). "
        f"Image: {image['what']}, {format_size(image['bytes'])}, "
        f"compressing {image['lz4_ratio']:.1f}x with lz4 and {image['zero_share']:.1%} zero "
        f"pages. One pre-copy pass (`--dirty-rate 0`); {runs} runs per codec and link, "
        "interleaved; times are medians with min-max. `/ best hand-picked` divides a "
        "codec's median by the fastest hand-picked codec's; `pages by codec` is what the "
        "codec's last run sent with which codec (for `auto`, its choices).",
        "",
    ]
    for link, cell in results.items():
        lines += [
            f"## {link}",
            "",
            "| codec | total time, s: median (min-max) | / best hand-picked | pages by codec |",
            "|---|---|---|---|",
        ]
        for codec, row in cell["codecs"].items():
            best = " (best)" if codec == cell["best_fixed"] else ""
            lines.append(
                f"| {codec}{best} | {row['median_s']:.3f} ({row['min_s']:.3f}-"
                f"{row['max_s']:.3f}) | {row['vs_best_fixed']:.2f} | {row['pages_by_codec']} |"
            )
        lines.append("")
    return "\n".join(lines)


def describe(image: Path, what: str) -> dict:
    """Size, zero pages and lz4 ratio of the image (how compressible the memory is)."""
    import lz4.frame

    pages = np.fromfile(image, dtype=np.uint8).reshape(-1, 4096)
    data = pages.tobytes()
    return {
        "what": what,
        "bytes": len(data),
        "zero_share": float(np.mean(~pages.any(axis=1))),
        "lz4_ratio": len(data) / len(lz4.frame.compress(data)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", type=Path, help="a memory image (made when missing)")
    parser.add_argument("--mib", type=int, default=256, help="MiB of memory to dump")
    parser.add_argument("--links", default="1Gbit,10Gbit")
    parser.add_argument("--codecs", default=DEFAULT_CODECS)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--markdown", type=Path, help="write the results document here")
    args = parser.parse_args()
    if args.runs < 1 or args.mib < 1:
        parser.error("--runs and --mib must be at least 1")
    with tempfile.TemporaryDirectory() as scratch:
        image = args.image or Path(scratch) / "redis.img"
        # what an image holds is kept beside it, so that a run on an image made before
        # describes it as the run that made it did
        about = image.with_name(image.name + ".json")
        if not image.exists():
            own = make_redis_image(image, args.mib)
            what = (
                f"redis-server's resident anonymous memory after `redis-benchmark "
                f"{' '.join(redis_load(args.mib))}` ({format_size(own)} of its own)"
            )
            about.write_text(json.dumps({"what": what}))
        elif about.exists():
            what = json.loads(about.read_text())["what"]
        else:
            what = f"`{image}`"
        info = describe(image, what)
        results = measure(image, args.codecs.split(","), args.links.split(","), args.runs)
    command = "python benchmarks/image_migration.py " + " ".join(sys.argv[1:])
    if args.markdown:
        args.markdown.write_text(render(results, info, args.runs, command.strip()) + "\n")
    if args.json:
        print(json.dumps({"image": info, "runs": args.runs, "results": results}, indent=2))
    else:
        print(render(results, info, args.runs, command.strip()))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
