"""The guest's content pool: made before a migration's clock starts, and not at all for a
memory image that nothing writes."""

from __future__ import annotations

import numpy as np

from migcodec.engine import guest as guest_module
from migcodec.engine.guest import make_guest


def _counting(monkeypatch) -> list:
    calls = []
    real = guest_module.generate_pages

    def generate(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(guest_module, "generate_pages", generate)
    return calls


def test_a_kept_image_that_nothing_writes_generates_no_pages(monkeypatch):
    calls = _counting(monkeypatch)
    image = np.arange(64 * 4096, dtype=np.uint64).astype(np.uint8).reshape(64, 4096)
    kept = image.copy()
    guest = make_guest(image, 0.0, fill=False)
    guest.start()
    guest.pause()
    guest.stop()
    assert calls == [] and np.array_equal(image, kept)


def test_a_dirtying_guest_has_its_pages_before_it_starts(monkeypatch):
    calls = _counting(monkeypatch)
    make_guest(np.zeros((64, 4096), dtype=np.uint8), 1e6, fill=False)
    assert len(calls) == 1


def test_a_filled_still_guest_generates_its_pages_once(monkeypatch):
    calls = _counting(monkeypatch)
    memory = np.zeros((64, 4096), dtype=np.uint8)
    make_guest(memory, 0.0, content="text", fill=True)
    assert len(calls) == 1 and memory[:, 8:].any()


def test_a_zero_guest_s_pages_are_zero_pages_filled_and_rewritten():
    """The fill stamped each page's number into it, and each write a counter: a ``zero``
    guest had no zero page but its first, and zero-page detection nothing to find. Other
    guests' pages are stamped: no two alike."""
    zero = np.full((256, 4096), 7, dtype=np.uint8)
    guest = make_guest(zero, 1e6, content="zero")
    assert not zero.any()
    guest._write(np.arange(0, 256, 3))
    assert not zero.any()
    text = np.zeros((256, 4096), dtype=np.uint8)
    guest = make_guest(text, 1e6, content="text")
    assert np.unique(text, axis=0).shape[0] == 256
    before = text[:10].copy()
    guest._write(np.arange(10))
    assert (text[:10, :8] == 1).all() and not np.array_equal(before, text[:10])
