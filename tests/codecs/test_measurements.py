"""Measurements of one encode: CPU time is sampled on one encode in CPU_SAMPLE_EVERY.

The clocks are fakes that the transform advances (wall time always, CPU time only while it
"spins"), so the sampling rule is checked exactly: on a loaded machine real clocks give a
spinning thread any CPU share at all, and a bound on it is a bound on the machine's load.
"""

from __future__ import annotations

import numpy as np
import pytest

from migcodec.codecs import Batch
from migcodec.codecs import base as codec_base
from migcodec.codecs.base import CPU_SAMPLE_EVERY, Codec


class _FakeClocks:
    """Stands in for the ``time`` module inside migcodec.codecs.base."""

    def __init__(self) -> None:
        self.wall = 100.0
        self.cpu = 5.0

    def perf_counter(self) -> float:
        return self.wall

    def thread_time(self) -> float:
        return self.cpu


class _Transform(Codec):
    """Takes 4 ms of wall time, of which ``busy`` is on the CPU; emits a one-byte blob."""

    name = "timed"

    def __init__(self, clocks: _FakeClocks, busy: float) -> None:
        self.clocks, self.busy = clocks, busy

    def params(self):
        return {"busy": self.busy}

    def encode_pages(self, pages):
        self.clocks.wall += 0.004
        self.clocks.cpu += 0.004 * self.busy
        return b"x"

    def decode_pages(self, blob, n_pages, page_size):
        raise NotImplementedError


@pytest.fixture
def clocks(monkeypatch) -> _FakeClocks:
    fake = _FakeClocks()
    monkeypatch.setattr(codec_base, "time", fake)
    return fake


def _encode(codec: Codec, times: int) -> list:
    memory = np.ones((4, 4096), dtype=np.uint8)
    return [codec.encode(Batch(memory, [(0, 4)])).stats for _ in range(times)]


@pytest.mark.parametrize("busy", [0.0, 0.25, 1.0])
def test_every_encode_is_charged_the_cpu_share_its_sample_measured(clocks, busy):
    for stats in _encode(_Transform(clocks, busy), 2 * CPU_SAMPLE_EVERY + 3):
        assert stats.wall_s == pytest.approx(0.004)
        assert stats.cpu_s == pytest.approx(0.004 * busy)


def test_the_clock_is_read_on_one_encode_in_cpu_sample_every(clocks):
    """A transform that stops using the CPU is seen at the next sample, not before: the
    encodes between two samples are estimated with the older share."""
    codec = _Transform(clocks, busy=1.0)
    first = _encode(codec, 3)
    codec.busy = 0.0
    rest = _encode(codec, 2 * CPU_SAMPLE_EVERY)
    cpu = [round(s.cpu_s / 0.004, 6) for s in first + rest]
    assert cpu == [1.0] * CPU_SAMPLE_EVERY + [0.0] * (CPU_SAMPLE_EVERY + 3)
