"""The reader hashes memory as frames arrive; the end-of-stream check is unchanged."""

import io

import numpy as np
import pytest

from migcodec.codecs import Batch, get_codec
from migcodec.datasets import generate_pages
from migcodec.hashing import RunningDigest
from migcodec.wire import DigestMismatch, FrameReader, FrameWriter, memory_digest

PAGES = 512


def _two_passes(digest_of=None) -> tuple[bytes, np.ndarray]:
    """Pass 0 sends memory in order; pass 1 resends scattered pages the guest rewrote,
    lowest first and below what the reader has hashed."""
    memory = generate_pages("mixed", PAGES, 4)
    out = io.BytesIO()
    raw, lz4 = get_codec("raw"), get_codec("lz4")
    writer = FrameWriter(out, 4096, PAGES, [raw, lz4])
    for first in range(0, PAGES, 64):
        writer.write_batch(raw.encode(Batch(memory, [(first, 64)])))
    writer.end_iteration(0, PAGES)
    memory[[3, 200, 201, 450]] ^= 0x5A
    writer.write_batch(lz4.encode(Batch(memory, [(200, 2), (3, 1)])))
    writer.write_batch(raw.encode(Batch(memory, [(450, 1)])))
    writer.end_iteration(1, 4)
    writer.end_stream(memory_digest(memory if digest_of is None else digest_of))
    return out.getvalue(), memory


@pytest.fixture
def small_steps(monkeypatch):
    monkeypatch.setattr(RunningDigest, "MIN_STEP", 4096 * 16)  # many checkpoints


def test_pages_resent_below_the_hashed_prefix_still_verify(small_steps):
    data, memory = _two_passes()
    dest = np.zeros_like(memory)
    summary = FrameReader(io.BytesIO(data)).receive(dest)
    assert summary.digest_verified and summary.iterations == 2
    np.testing.assert_array_equal(dest, memory)


def test_a_digest_of_other_memory_is_refused(small_steps):
    data, memory = _two_passes(digest_of=np.zeros((PAGES, 4096), np.uint8))
    with pytest.raises(DigestMismatch, match="destination memory digest differs"):
        FrameReader(io.BytesIO(data)).receive(np.zeros_like(memory))


def test_extend_hashes_only_what_continues_the_prefix():
    """``extend`` is the in-order fast path: a write that starts where hashing stopped is
    hashed at once, any other waits for ``digest``; the digest is the same either way."""
    memory = generate_pages("mixed", 64, 6)
    running = RunningDigest(memory)
    running.extend(4096 * 8, 4096 * 16)  # not at the prefix: left for later
    assert running.hashed == 0
    running.extend(0, 4096 * 8)
    assert running.hashed == 4096 * 8
    running.extend(4096 * 8, 4096 * 16)
    assert running.hashed == 4096 * 16
    assert running.digest() == memory_digest(memory)


def test_a_first_pass_that_rewrites_hashed_pages_hashes_them_once_at_the_end(
    small_steps, monkeypatch
):
    """Frames that each rewrote the same pages in the first pass had them hashed again at
    once, frame after frame (68-byte frames of zero pages made a reader hash 64 MiB each);
    a rewrite only rewinds, and what it leaves is hashed when the stream ends."""
    memory = generate_pages("mixed", 64, 7)
    out = io.BytesIO()
    raw = get_codec("raw")
    writer = FrameWriter(out, 4096, 64, [raw])
    for _ in range(5):
        writer.write_batch(raw.encode(Batch(memory, [(0, 64)])))
    writer.end_iteration(0, 5 * 64)
    writer.end_stream(memory_digest(memory))
    hashed = []
    advance = RunningDigest.advance

    def counted(self, end):
        before = self.hashed
        advance(self, end)
        hashed.append(self.hashed - before)

    monkeypatch.setattr(RunningDigest, "advance", counted)
    dest = np.zeros_like(memory)
    summary = FrameReader(io.BytesIO(out.getvalue())).receive(dest)
    assert summary.digest_verified
    np.testing.assert_array_equal(dest, memory)
    assert sum(hashed) == 2 * memory.nbytes  # the first frame's, then once at the end


def test_the_digest_at_the_end_stops_when_its_check_says_so():
    """A stream that announced 12 GiB of memory in a file and ended at once had all of it
    read and hashed, 27 s past a deadline of 4 s: the rest is hashed a step at a time, the
    check (the connection's deadline) between steps."""
    calls = []

    def check():
        calls.append(len(calls))
        if len(calls) == 3:
            raise TimeoutError("the connection's deadline of 4 s passed")

    running = RunningDigest(np.zeros((1024, 4096), np.uint8))  # 4 MiB in steps of 1 MiB
    with pytest.raises(TimeoutError, match="deadline"):
        running.digest(check)
    assert len(calls) == 3 and running.hashed == 2 * RunningDigest.MIN_STEP
    memory = generate_pages("mixed", 64, 8)
    assert RunningDigest(memory).digest(lambda: None) == memory_digest(memory)
