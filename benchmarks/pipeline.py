"""The migration pipeline against the socket under it, side by side in one run.

    python benchmarks/pipeline.py [--memory 256MiB] [--rounds 7] [--workers 2] [--json]

The destination runs in a process of its own, as it does in any migration: the source's
and the destination's Python work then do not take turns on one interpreter lock, which
would charge the pipeline for a contention no migration between two hosts has. Every round
opens one loopback TCP connection to it and moves the same guest memory over it twice, in
an order that alternates from round to round:

* ``socket``: a plain ``sendall`` loop, 64 pages a call, that the destination reads with
  ``recv_into`` straight into its memory: the most this socket can carry;
* ``pipeline``: a migration by the reference engine (``MigrationSource`` with the ``raw``
  codec, which its sender encodes itself, ``--workers`` setting how many batches may be in
  flight, an unlimited link) of a guest that holds still, so one pass and an empty
  stop-and-copy finish it, to ``receive_migration`` on the same connection. Everything a
  migration does is in it: frames and their checksums (memory that holds still needs no
  staging snapshot), the destination's checks and decode, and the memory digests both
  sides compute.

Each destination memory is allocated once and reused (a guest's memory exists before it is
migrated into), and the destination checks both against the source's memory (inherited
when its process was forked) after every round. Times run from the first byte sent to the
source hearing that the destination has all of it (for the plain loop, one byte back; for
the pipeline, its verdict on the digest). The ratio is ``socket time / pipeline time`` per
round (the pipeline's share of the socket's throughput), and the median over rounds is
printed; both halves of a round met the same machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import socket
import statistics
import sys
import time

import numpy as np

from migcodec.codecs import get_codec
from migcodec.engine import MigrationConfig
from migcodec.engine.chooser import FixedChooser
from migcodec.engine.destination import receive_migration
from migcodec.engine.source import MigrationSource
from migcodec.units import parse_size

PAGE = 4096
CHUNK_PAGES = 64
VERDICT = 256  # bytes of the destination's verdict on a round


def _guest(n_pages: int) -> np.ndarray:
    """Memory with no zero page (the raw codec would send those as markers)."""
    words = np.random.default_rng(0).integers(1, 2**63, n_pages * PAGE // 8, dtype=np.uint64)
    return words.view(np.uint8).reshape(n_pages, PAGE)


def _send_plain(sock: socket.socket, memory: np.ndarray) -> None:
    flat = memoryview(memory.reshape(-1))
    step = CHUNK_PAGES * PAGE
    for start in range(0, len(flat), step):
        sock.sendall(flat[start : start + step])


def _receive_plain(sock: socket.socket, memory: np.ndarray) -> None:
    view = memoryview(memory.reshape(-1))
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if not n:
            raise ConnectionError(f"the plain stream ended after {got} of {len(view)} bytes")
        got += n


def _destination(server: socket.socket, memory: np.ndarray, rounds: int) -> None:
    """The destination process: per round, one connection and both transfers, in the order
    the source's first byte names; then whether both memories equal ``memory`` (inherited
    from the source process, as a source's memory image would be compared)."""
    dest = {"plain": np.zeros_like(memory), "pipeline": np.zeros_like(memory)}
    for _ in range(rounds):
        conn, _ = server.accept()
        with conn:
            try:
                dest["plain"].fill(0)
                dest["pipeline"].fill(0)
                plain_first = conn.recv(1) == b"p"
                for what in ("plain", "pipeline") if plain_first else ("pipeline", "plain"):
                    if what == "plain":
                        _receive_plain(conn, dest["plain"])
                        conn.sendall(b"r")  # received: the source stops its clock
                    else:
                        receive_migration(conn, dest["pipeline"])
                wrong = [w for w in ("plain", "pipeline") if not np.array_equal(dest[w], memory)]
                verdict = f"the {' and '.join(wrong)} transfer delivered different memory"
                conn.sendall((verdict if wrong else "ok").encode().ljust(VERDICT, b" "))
            except Exception as exc:  # told to the source, which raises it
                with contextlib.suppress(OSError):
                    conn.sendall(f"destination failed: {exc!r}"[:VERDICT].encode().ljust(VERDICT))


def _round(port: int, memory: np.ndarray, workers: int, plain_first: bool) -> dict:
    """One connection, both transfers; seconds of each and the pipeline's report."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"p" if plain_first else b"m")
        seconds = {}
        for what in ("plain", "pipeline") if plain_first else ("pipeline", "plain"):
            t0 = time.perf_counter()
            if what == "plain":
                _send_plain(sock, memory)
                if sock.recv(1) != b"r":
                    raise RuntimeError("the destination did not confirm the plain transfer")
            else:
                config = MigrationConfig(workers=workers, link_rate=None)
                source = MigrationSource(memory, FixedChooser(get_codec("raw")), config)
                report = source.migrate(sock)
            seconds[what] = time.perf_counter() - t0
        verdict = bytearray(VERDICT)
        got = 0
        while got < VERDICT and (n := sock.recv_into(memoryview(verdict)[got:])):
            got += n
    verdict = verdict[:got].decode(errors="replace").strip()
    if verdict != "ok" or not report.succeeded:
        raise RuntimeError(f"round failed: {report.error or verdict}")
    return {"socket_s": seconds["plain"], "pipeline_s": seconds["pipeline"], "report": report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", default="256MiB")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="MigrationConfig.workers: with depth, the batches in flight (the sender encodes raw)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    n_pages = parse_size(args.memory) // PAGE
    memory = _guest(n_pages)
    with socket.create_server(("127.0.0.1", 0)) as server:
        # a process of its own, as a destination is: in one process the two ends would
        # share one interpreter lock, which no migration between hosts does
        destination = multiprocessing.get_context("fork").Process(
            target=_destination, args=(server, memory, args.rounds + 1), daemon=True
        )
        destination.start()
        port = server.getsockname()[1]
        try:
            _round(port, memory, args.workers, True)  # warm-up
            rounds = [_round(port, memory, args.workers, r % 2 == 0) for r in range(args.rounds)]
        finally:
            destination.join(timeout=60)
            if destination.is_alive():
                destination.kill()
    nbytes = memory.nbytes
    last = rounds[-1]["report"]
    result = {
        "memory_bytes": nbytes,
        "rounds": args.rounds,
        "workers": args.workers,
        "socket_mb_s": nbytes / statistics.median(r["socket_s"] for r in rounds) / 1e6,
        "pipeline_mb_s": nbytes / statistics.median(r["pipeline_s"] for r in rounds) / 1e6,
        "pipeline_over_socket": statistics.median(r["socket_s"] / r["pipeline_s"] for r in rounds),
        "pipeline_wire_bytes": last.wire_bytes,
        "pipeline_codec_cpu_s": last.codec_cpu_s,
        "pipeline_sender_cpu_s": last.sender_cpu_s,
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"{nbytes >> 20} MiB over loopback TCP, median of {args.rounds} interleaved rounds, "
        f"raw codec (encoded by the sender), workers={args.workers}"
    )
    print(f"  plain sendall loop    {result['socket_mb_s']:8.0f} MB/s")
    print(f"  migration pipeline    {result['pipeline_mb_s']:8.0f} MB/s")
    print(f"  pipeline / socket     {result['pipeline_over_socket']:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
