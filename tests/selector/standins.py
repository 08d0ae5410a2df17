"""Test stand-ins for what other branches provide: a phased window source (datasets
branch) and a delta-record codec (delta branch). Minimal on purpose: they exist so the
selector's delta plumbing and phased behaviour can be tested before those branches land,
and are replaced by ``migcodec.datasets`` workloads and the ``dsa-delta`` plugin after.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from migcodec.codecs import Codec, DecodeError, PageEncoding, PageMode
from migcodec.datasets import Window, generate_pages

#: (phase name, page generator, fraction of 8-byte words rewritten; None = whole pages)
PHASES = (
    ("boot", "zero", None),
    ("cache", "memcached", None),
    ("counters", "memcached", 0.01),
    ("text", "text", None),
    ("random", "random", None),
    ("sparse", "random", 0.03),
)


def phased_windows(
    n_windows: int = 48, pages: int = 512, seed: int = 0, mean_phase: int = 6
) -> Iterator[Window]:
    """Windows over one memory of ``pages`` pages whose content and write style change in
    phases (lengths drawn around ``mean_phase`` windows); ``previous`` is the memory before."""
    rng = np.random.default_rng(seed)
    memory = np.zeros((pages, 4096), dtype=np.uint8)
    indices = np.arange(pages, dtype=np.int64)
    phase, left = -1, 0
    for i in range(n_windows):
        if left == 0:
            phase = (phase + 1) % len(PHASES)
            left = int(rng.integers(mean_phase // 2, mean_phase * 3 // 2 + 1))
        left -= 1
        name, kind, frac = PHASES[phase]
        previous = memory.copy()
        if frac is None:
            memory = generate_pages(kind, pages, seed=int(rng.integers(1 << 31)))
        else:
            words = memory.view(np.uint64)
            hit = rng.random(words.shape) < frac
            words[hit] = rng.integers(0, 1 << 63, int(hit.sum()), dtype=np.int64).view(np.uint64)
        yield Window(i, indices, memory.copy(), previous, name)


class StandInDelta(Codec):
    """Delta records against what the destination holds (the framework's ``held``): per
    page a u16 count, then 10-byte entries (u16 word offset, 8 new bytes); a page whose
    record would not pay goes raw, a page the destination is not known to hold goes raw."""

    name = "delta-standin"
    kind = "delta"
    reads_destination = True

    def _encode_pages(self, pages, held):
        n, size = pages.shape
        hit = np.zeros(n, dtype=bool) if held is None else held.hit
        new = pages.view(np.uint64)
        old = new.copy()
        if hit.any():
            old[hit] = held.versions.view(np.uint64)
        changed = (new != old) & hit[:, None]
        counts = changed.sum(axis=1)
        use = hit & (counts * 10 + 2 < size)
        modes = np.where(use, PageMode.ENCODED, PageMode.RAW).astype(np.uint8)
        rows, words = np.nonzero(changed & use[:, None])
        entries = np.zeros(rows.size, dtype=[("off", "<u2"), ("word", "<u8")])
        entries["off"], entries["word"] = words, new[rows, words]
        blob = counts[use].astype("<u2").tobytes() + entries.tobytes()
        return PageEncoding(blob, modes)

    def _decode_pages(self, blob, modes, current, page_size):
        n = modes.shape[0]
        counts = np.frombuffer(blob, dtype="<u2", count=n).astype(np.int64)
        entries = np.frombuffer(blob, dtype=[("off", "<u2"), ("word", "<u8")], offset=2 * n)
        if entries.size != counts.sum() or (entries["off"] >= page_size // 8).any():
            raise DecodeError("delta records do not match their counts")
        out = current.copy().view(np.uint64)
        out[np.repeat(np.arange(n), counts), entries["off"]] = entries["word"]
        return out.view(np.uint8).reshape(-1)
