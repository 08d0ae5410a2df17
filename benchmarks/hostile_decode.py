"""Time and peak memory of decoding hostile frames, each case in a fresh process.

    python benchmarks/hostile_decode.py [--case NAME ...]

Cases (each names the frame and how it is malformed):

* ``qat-empty-members``: 1024 pages of 4 KiB whose qat payload is 20-byte empty gzip
  members (4 MiB of them);
* ``xbzrle-64mib-zeros`` / ``xbzrle-64mib-random``: 4096 pages of 16 KiB, every page an
  XBZRLE delta of 16381 bytes (64 MiB of deltas), all zeros (a chain of two-byte pairs,
  refused after the parse) or random bytes;
* ``xbzrle-64mib-valid``: the same size of valid deltas (one-byte changes every other
  byte), which must decode.

Each row gives the decode's wall time, its verdict, and how far it raised the process's
peak resident memory above what the frame and destination memory already took.
"""

from __future__ import annotations

import argparse
import gzip
import resource
import subprocess
import sys
import time

import numpy as np

CASES = ("qat-empty-members", "xbzrle-64mib-zeros", "xbzrle-64mib-random", "xbzrle-64mib-valid")


def _frame(case: str):
    from migcodec.codecs import Encoded, PageMode, get_codec

    if case == "qat-empty-members":
        pages, page_size = 1024, 4096
        member = gzip.compress(b"", mtime=0)
        payload = member * (pages * page_size // len(member))
        codec = get_codec("qat")
    else:
        pages, page_size, length = 4096, 16384, 16381
        if case.endswith("zeros"):
            deltas = np.zeros(pages * length, np.uint8)
        elif case.endswith("random"):
            deltas = np.random.default_rng(0).integers(0, 256, pages * length, dtype=np.uint8)
        else:  # zero run 1, change run 1, one new byte: 3 bytes a pair
            pair = np.tile(np.array([1, 1, 7], np.uint8), length // 3)
            length = pair.size
            deltas = np.tile(pair, pages)
        lengths = np.full(pages, length, "<u2")
        payload = b"".join((np.zeros(1, "<u4").tobytes(), lengths.tobytes(), deltas.tobytes()))
        codec = get_codec("xbzrle")
    modes = np.full(pages, PageMode.ENCODED, np.uint8)
    encoded = Encoded(codec.name, page_size, np.array([[0, pages]]), modes, (payload,))
    return codec, encoded, np.zeros((pages, page_size), np.uint8)


def run_case(case: str) -> str:
    """Decode one case in this process; return its row."""
    from migcodec.codecs import CodecError

    codec, encoded, memory = _frame(case)
    memory.fill(1)  # fault the destination in: it is not the decode's memory
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        codec.decode(encoded, memory)
        verdict = "decoded"
    except CodecError as exc:
        verdict = f"{type(exc).__name__}: {exc}"
    wall = time.perf_counter() - start
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    frame = encoded.payload_view().nbytes / (1 << 20)
    return f"{case}: {frame:.0f} MiB frame, {wall:.2f} s, peak RSS +{grew:.0f} MiB; {verdict[:90]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=CASES, help="default: all")
    parser.add_argument("--in-process", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        print(run_case(args.in_process), flush=True)
        return
    for case in args.case or CASES:
        subprocess.run([sys.executable, __file__, "--in-process", case], check=True)


if __name__ == "__main__":
    main()
