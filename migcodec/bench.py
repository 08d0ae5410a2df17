"""``migcodec bench``: every codec on the same guest pages, verified by a round trip.

Encoding runs through :class:`CodecEngines` with the requested number of workers, as a
migration would use it; timings are medians over repeats because machines are noisy.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np

from migcodec.codecs import Batch, Codec, CodecEngines, CodecPath, get_codec, stuck
from migcodec.codecs.bounded import codec_watch, run_bounded
from migcodec.codecs.roundtrip import NOT_THE_DECODERS, failures_of, round_trip_mismatch
from migcodec.codecs.stuck import stuck_codec
from migcodec.datasets import generate_pages

#: what a user of ``bench`` can do about a codec that is stuck
_INSTEAD = "leave it out of --codecs"


@dataclass
class CodecBench:
    codec: str
    config: dict
    path: CodecPath
    ratio: float
    encode_mb_s: float
    decode_mb_s: float
    cpu_s_per_gb: float
    verified: bool
    #: emulated accelerators: guest MB/s of one device engine per the device model (a model,
    #: not a measurement); ``None`` for codecs that ran on the CPU
    modelled_device_mb_s: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _encode_all(codec: Codec, memory: np.ndarray, batch_pages: int, workers: int):
    """Encode memory in single-run batches; return (payloads, wall, cpu, out_bytes)."""
    n_pages = memory.shape[0]
    encoded = []
    cpu = 0.0
    out_bytes = 0
    wall0 = time.perf_counter()
    with CodecEngines(
        codec, engines=workers, depth=4, page_size=memory.shape[1], max_pages=batch_pages
    ) as engines:
        half = max(1, engines.pool.size // 2)
        for first in range(0, n_pages, batch_pages):
            if not engines.pool.free_count():
                # every request in flight: collect half of them, woken once for all
                encoded += _collect(engines, half)
            count = min(batch_pages, n_pages - first)
            engines.submit(Batch(memory, [(first, count)], memory.shape[1], batch_pages))
        while engines.in_flight:
            encoded += _collect(engines, engines.in_flight)
    wall = time.perf_counter() - wall0
    for item in encoded:
        cpu += item.stats.cpu_s
        out_bytes += item.stats.output_bytes
    return encoded, wall, cpu, out_bytes


def _decode_all(codec: Codec, encoded: list, dest: np.ndarray) -> float:
    """Decode every batch into ``dest``, each call watched (a bounded unit's: a decode that
    never returns held the command forever), and return the wall seconds it took."""
    watch = codec_watch()
    t0 = time.perf_counter()
    for item in encoded:
        watch.calling(codec, "decode", codec.decode, item, dest)
    return time.perf_counter() - t0


def _collect(engines: CodecEngines, count: int) -> list:
    """``count`` encoded batches, detached (fewer if
    :data:`~migcodec.codecs.stuck.STUCK_AFTER_S` passes first); none within it is a stuck
    codec, which the engines are left to on the way out."""
    bound = stuck.STUCK_AFTER_S  # read at each wait: tests shorten it
    done = engines.wait_many(count, bound)
    if not done:
        raise stuck_codec(engines.codec, bound, instead=_INSTEAD)
    return [_detach(request) for request in done]


def _detach(request):
    """Copy an encoded batch out of its pooled buffer, then recycle the request."""
    enc = request.result()
    enc.segments = (enc.payload,)
    request.release()
    return enc


def _same_pages(a: np.ndarray, b: np.ndarray, chunk_pages: int = 1024) -> bool:
    """``np.array_equal`` a chunk of pages at a time: its temporary is a chunk's, not the
    size of the memory."""
    return a.shape == b.shape and all(
        np.array_equal(a[i : i + chunk_pages], b[i : i + chunk_pages])
        for i in range(0, a.shape[0], chunk_pages)
    )


def bench_codec(
    codec: Codec, memory: np.ndarray, batch_pages: int = 64, workers: int = 1, repeats: int = 3
) -> CodecBench:
    """Time ``codec`` on ``memory`` and verify its round trips. Whatever its own code raises
    (a plugin's, a ``SystemExit`` or an assertion included; not Ctrl-C) is a
    :class:`CodecFailed` naming it and what to do, as a round trip that differs is: the
    command reports a codec error in one line, and a bug in a plugin was a traceback."""
    with failures_of(codec.name, "in the benchmark"):
        return _bench_codec(codec, memory, batch_pages, workers, repeats)


def _bench_codec(
    codec: Codec, memory: np.ndarray, batch_pages: int, workers: int, repeats: int
) -> CodecBench:
    nbytes = memory.nbytes
    walls, cpus, decode_walls = [], [], []
    # an instance of its own, as a destination's is: one worker encodes with ``codec``
    # itself, and a codec that sent a key to pages it kept was verified by decoding with it
    decoder = codec.clone()
    for _ in range(repeats):
        # one repeat's encoding and decoding at a time: kept across repeats (and with a
        # whole-memory comparison's temporary) a run held 5 copies of the pages, where the
        # command checks that 3 fit (the pages, their encoding, their decoding)
        encoded = dest = None
        encoded, wall, cpu, out_bytes = _encode_all(codec, memory, batch_pages, workers)
        walls.append(wall)
        cpus.append(cpu)
        dest = np.zeros_like(memory)
        # a DecodeError here is the codec's own output found malformed: its failure too
        with failures_of(codec.name, "to decode the benchmark pages", NOT_THE_DECODERS):
            decode_walls.append(run_bounded(_decode_all, decoder, encoded, dest, instead=_INSTEAD))
        if not _same_pages(dest, memory):
            raise round_trip_mismatch(codec.name, "the benchmark pages")
    path = encoded[0].stats.path if encoded else CodecPath.SOFTWARE
    device_s = sum(item.stats.device_s or 0.0 for item in encoded)
    return CodecBench(
        codec=codec.name,
        config=codec.get_config(),
        path=path,
        ratio=nbytes / out_bytes,
        encode_mb_s=nbytes / statistics.median(walls) / 1e6,
        decode_mb_s=nbytes / statistics.median(decode_walls) / 1e6,
        cpu_s_per_gb=statistics.median(cpus) / nbytes * 1e9,
        verified=True,
        modelled_device_mb_s=nbytes / device_s / 1e6 if device_s else None,
    )


def run_bench(
    workload: str,
    codecs: list[str],
    pages: int,
    workers: int,
    seed: int = 0,
    page_size: int = 4096,
    batch_pages: int = 64,
) -> list[CodecBench]:
    memory = generate_pages(workload, pages, seed, page_size)
    # each built on a bounded unit (a plugin whose import, probe or constructor never
    # returns held the command forever), and benchmarked before the next is built: one
    # instance at a time, as a device with few engines may need
    results = []
    for name in codecs:
        codec = run_bounded(get_codec, name, instead=_INSTEAD)
        results.append(bench_codec(codec, memory, batch_pages, workers))
    return results
