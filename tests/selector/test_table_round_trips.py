"""A table scores only arms whose output decodes back to the window's pages: a checked batch
that decodes to other bytes, or whose decode raises, ends the measurement naming the codec
and the window; honest arms (delta arms decoded against what the destination holds) are
measured as without the check, and the decode is not timed."""

from __future__ import annotations

import time
import zlib

import numpy as np
import pytest

from migcodec.codecs import Codec, CodecFailed, RoundTripMismatch, get_codec
from migcodec.datasets import Window, generate_pages
from migcodec.selector import parse_arms
from migcodec.selector.evaluation import Table, TableError, build_table
from migcodec.selector.evaluation import table as table_module
from migcodec.selector.evaluation.cluster import _task_error
from migcodec.selector.evaluation.table import CHECK_EVERY, encode_window

#: the first byte of a batch that :class:`Tampering` decodes one byte off (text is ASCII)
MARK = 0xFF
BATCH = 4


class Tampering(Codec):
    """zlib, except that a batch whose first page starts with :data:`MARK` decodes with
    its last byte flipped: one byte off, in one batch."""

    name = "tampering"

    def encode_pages(self, pages: np.ndarray) -> bytes:
        return zlib.compress(pages.tobytes(), 1)

    def decode_pages(self, blob, n_pages: int, page_size: int) -> bytes:
        out = bytearray(zlib.decompress(blob))
        if out[0] == MARK:
            out[-1] ^= 1
        return bytes(out)


class DecodeRaises(Tampering):
    name = "decode-raises"

    def decode_pages(self, blob, n_pages: int, page_size: int) -> bytes:
        raise RuntimeError("no such dictionary")


class DecodesShort(Tampering):
    name = "decodes-short"

    def decode_pages(self, blob, n_pages: int, page_size: int) -> bytes:
        return zlib.decompress(blob)[:-1]


def _window(index: int, marked_batch: int | None = None, previous: bool = False) -> Window:
    """Three batches of text pages; ``marked_batch`` starts with :data:`MARK`."""
    pages = generate_pages("text", 3 * BATCH, index)
    if marked_batch is not None:
        pages[marked_batch * BATCH, 0] = MARK
    before = None
    if previous:  # held versions with a few words changed since
        before = pages.copy()
        before[:, ::97] ^= 0x20
    return Window(index, np.arange(pages.shape[0]), pages, previous=before)


def test_a_batch_one_byte_off_in_one_window_is_refused_naming_the_codec_and_window():
    codec = Tampering()
    for index in range(3):  # honest on windows with no marked batch
        encode_window(codec, _window(index), BATCH, codec.clone(), check_every=1)
    with pytest.raises(RoundTripMismatch) as info:
        encode_window(codec, _window(3, marked_batch=2), BATCH, codec.clone(), check_every=1)
    assert str(info.value) == (
        "codec 'tampering' decoded window 3's pages to other bytes than it encoded; "
        "use another codec"
    )


@pytest.mark.parametrize(("index", "batch"), [(0, 0), (1, 1), (2, 0), (5, 1)])
def test_batch_j_of_window_i_is_checked_when_i_plus_j_is_a_multiple_of_check_every(index, batch):
    """The checked batches are a bounded, deterministic subset (the same in every
    measurement of a trace); the others are not decoded."""
    assert CHECK_EVERY == 2
    codec = Tampering()
    with pytest.raises(RoundTripMismatch):
        encode_window(codec, _window(index, marked_batch=batch), BATCH, codec.clone())
    unchecked = _window(index, marked_batch=batch + 1)
    encode_window(codec, unchecked, BATCH, codec.clone())


@pytest.mark.parametrize(
    ("codec", "what"),
    [
        (DecodeRaises(), "RuntimeError: no such dictionary"),
        (
            DecodesShort(),
            f"DecodeError: decodes-short decoded {BATCH * 4096 - 1} bytes where {BATCH} pages "
            f"({BATCH * 4096} bytes) were expected",
        ),
    ],
)
def test_a_decode_that_fails_is_the_codecs_failure(codec, what):
    with pytest.raises(CodecFailed) as info:
        encode_window(codec, _window(4), BATCH, codec.clone())
    assert str(info.value) == (
        f"codec {codec.name!r} failed to decode window 4's pages ({what}); use another codec"
    )


@pytest.mark.parametrize("name", ["xbzrle", "dsa-delta"])
def test_delta_arms_decode_against_what_the_destination_holds(name):
    """Their records apply to ``previous``: decoded into anything else, they would not
    give the pages back."""
    codec = get_codec(name)
    window = _window(0, previous=True)
    checked = encode_window(codec, window, BATCH, codec.clone(), check_every=1)
    assert checked.output_bytes < window.nbytes / 4  # deltas, not pages sent whole
    assert checked.output_bytes == encode_window(codec, window, BATCH).output_bytes


class SlowDecode(Tampering):
    """Tampering's honest batches, decoded after :data:`SLOW_S` of this thread's CPU."""

    def decode_pages(self, blob, n_pages: int, page_size: int) -> bytes:
        end = time.thread_time() + SLOW_S
        while time.thread_time() < end:
            pass
        return super().decode_pages(blob, n_pages, page_size)


SLOW_S = 0.05


def test_the_decode_is_not_timed():
    codec = Tampering()
    outcome = encode_window(codec, _window(0), BATCH, SlowDecode(), check_every=1)
    assert outcome.cpu_s < SLOW_S and outcome.wall_s < SLOW_S


def test_a_table_says_its_arms_were_checked_and_a_table_before_the_check_is_refused(
    tmp_path, monkeypatch
):
    windows = [_window(0, previous=True), _window(1)]
    table = build_table(windows, parse_arms("raw;xbzrle"), repeats=1)
    assert table.meta["checked_every"] == CHECK_EVERY
    path = tmp_path / "t.npz"
    table.save(path)
    assert Table.load(path).meta["checked_every"] == CHECK_EVERY
    monkeypatch.setattr(table_module, "TABLE_VERSION", 6)  # as written before the check
    table.save(path)
    monkeypatch.undo()
    with pytest.raises(TableError, match="has version 6, expected 7; delete it to rebuild"):
        Table.load(path)


def test_a_cluster_task_whose_codec_lied_fails_as_the_codec_did():
    """Not a worker's crash (``RuntimeError``): the evaluation reports it as a codec's."""
    lie = RoundTripMismatch("codec 'lying' decoded window 0's pages to other bytes")
    error = _task_error("measuring t windows 0-16 (lying)", lie)
    assert type(error) is RoundTripMismatch
    assert str(error) == f"measuring t windows 0-16 (lying): {lie}"
