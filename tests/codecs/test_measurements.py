"""Measurements of one encode: CPU time is sampled on one encode in CPU_SAMPLE_EVERY."""

from __future__ import annotations

import time

import numpy as np

from migcodec.codecs import Batch
from migcodec.codecs.base import CPU_SAMPLE_EVERY, Codec, PageEncoding


class _Transform(Codec):
    """Sleeps (off CPU) or spins (on CPU) for a set time, then emits a one-byte blob."""

    name = "timed"
    kind = "compress"

    def __init__(self, spin: bool) -> None:
        self.spin = spin

    def params(self):
        return {"spin": self.spin}

    def _encode_pages(self, pages, indices):
        end = time.perf_counter() + 0.004
        if self.spin:
            while time.perf_counter() < end:
                pass
        else:
            time.sleep(0.004)
        return PageEncoding(b"x")

    def _decode_pages(self, blob, modes, current, page_size):
        raise NotImplementedError


def _stats(spin: bool):
    memory = np.ones((4, 4096), dtype=np.uint8)
    codec = _Transform(spin)
    return [codec.encode(Batch(memory, [(0, 4)])).stats for _ in range(2 * CPU_SAMPLE_EVERY)]


def test_cpu_time_of_a_waiting_transform_stays_near_zero_between_samples():
    for stats in _stats(spin=False):
        assert stats.wall_s >= 0.004
        assert stats.cpu_s < 0.5 * stats.wall_s


def test_cpu_time_of_a_busy_transform_follows_its_wall_time():
    for stats in _stats(spin=True):
        assert stats.wall_s >= 0.004
        assert 0.5 * stats.wall_s < stats.cpu_s <= 1.2 * stats.wall_s
