"""The codec contract a plugin implements: ``encode_pages`` / ``decode_pages``, its config,
and what the framework records from what a transform returns.

A codec written against the earlier hooks is refused when its class is defined, with a
message naming each method that replaces one of them.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from migcodec.codecs import (
    Batch,
    Codec,
    CodecPath,
    DecodeError,
    Encoded,
    PageEncoding,
    PageMode,
)
from migcodec.codecs.delta import DeltaCodec
from migcodec.codecs.errors import OutdatedPlugin

PAGE = 4096


class Halves(Codec):
    """Sends the first half of every page; the second half decodes as zeros."""

    name = "halves"

    def __init__(self, tag: int = 0) -> None:
        self.tag = tag

    def encode_pages(self, pages):
        return np.ascontiguousarray(pages[:, : PAGE // 2]).tobytes()

    def decode_pages(self, blob, n_pages, page_size):
        out = np.zeros((n_pages, page_size), np.uint8)
        out[:, : page_size // 2] = np.frombuffer(blob, np.uint8).reshape(n_pages, -1)
        return out


def _memory(n: int = 4) -> np.ndarray:
    memory = np.zeros((n, PAGE), np.uint8)
    memory[:, : PAGE // 2] = np.arange(1, n + 1, dtype=np.uint8)[:, None]
    return memory


def test_a_compressor_is_two_methods_and_its_constructor():
    codec = Halves(tag=3)
    assert codec.kind == "compress" and not codec.reads_destination
    assert codec.get_config() == {"name": "halves", "tag": 3}  # read from the attribute
    assert Halves.from_config({"name": "halves", "tag": 3}) == codec
    memory = _memory()
    encoded = codec.encode(Batch(memory, [(0, 4)]))
    assert encoded.modes.tolist() == [PageMode.ENCODED] * 4
    assert encoded.payload_nbytes == 4 * PAGE // 2
    dest = np.full_like(memory, 0xA5)
    codec.decode(encoded, dest)
    np.testing.assert_array_equal(dest, memory)


def test_a_parameter_kept_under_another_name_asks_for_params():
    class Hidden(Halves):
        def __init__(self, level: int = 1) -> None:
            self._level = level

    with pytest.raises(TypeError) as info:
        Hidden().get_config()
    assert str(info.value) == (
        "Hidden takes 'level' but keeps no attribute of that name: store it as self.level "
        "or override params()"
    )


def test_none_sends_the_pages_raw_and_a_page_encoding_carries_path_and_device_time():
    class Declines(Halves):
        def encode_pages(self, pages):
            return None

    class Emulated(Halves):
        def encode_pages(self, pages):
            return PageEncoding(super().encode_pages(pages), path=CodecPath.EMULATED, device_s=2.5)

    memory = _memory()
    declined = Declines().encode(Batch(memory, [(0, 4)]))
    assert (declined.modes == PageMode.RAW).all() and declined.payload == memory.tobytes()
    assert (declined.stats.path, declined.stats.device_s) == ("software", None)
    emulated = Emulated().encode(Batch(memory, [(0, 4)]))
    assert (emulated.stats.path, emulated.stats.device_s) == ("emulated", 2.5)


def test_a_compressor_has_one_encoded_form():
    """Modes above ``ENCODED`` belong to delta codecs; the framework refuses them for a
    compressor before its decoder sees the blob (one more check on untrusted input)."""
    frame = Encoded("halves", PAGE, np.array([[0, 2]]), np.array([2, 3], np.uint8), (b"x",))
    dest = np.full((2, PAGE), 0xA5, np.uint8)
    with pytest.raises(DecodeError) as info:
        Halves().decode(frame, dest)
    assert str(info.value) == "page mode 3 is not one of halves's modes (zero 0, raw 1, encoded 2)"
    assert (dest == 0xA5).all()


@pytest.mark.parametrize(
    ("base", "hooks", "replacements"),
    [
        (
            Codec,
            ("_encode_pages", "_decode_pages"),
            "_encode_pages -> encode_pages(self, pages) -> blob (or None: send the pages raw); "
            "_decode_pages -> decode_pages(self, blob, n_pages, page_size) -> n_pages * "
            "page_size bytes",
        ),
        (
            DeltaCodec,
            ("_make_deltas", "_apply_deltas"),
            "_make_deltas -> make_deltas(self, old, new) -> (status, lengths, deltas); "
            "_apply_deltas -> apply_deltas(self, pages, deltas, lengths)",
        ),
    ],
)
def test_a_codec_written_for_the_earlier_hooks_is_refused_naming_the_new_ones(
    base, hooks, replacements
):
    body = {hook: lambda self, *args: None for hook in hooks}
    with pytest.raises(OutdatedPlugin) as info:
        type("Old", (base,), {"name": "old", "__module__": "old_plugin", **body})
    assert str(info.value) == (
        f"codec class old_plugin.Old implements {', '.join(hooks)}, hooks of an earlier "
        f"migcodec codec contract; rename and reshape them: {replacements} "
        "(examples/migcodec-rle is a complete codec)"
    )
    assert isinstance(info.value, TypeError)
    assert re.search(r"examples/migcodec-rle", str(info.value))


def test_only_a_delta_codec_reads_the_destination():
    with pytest.raises(TypeError) as info:
        type("Reads", (Halves,), {"reads_destination": True, "__module__": "plugin"})
    assert str(info.value) == (
        "codec class plugin.Reads sets reads_destination; a codec that encodes against the "
        "destination subclasses migcodec.codecs.delta.DeltaCodec and implements make_deltas "
        "/ apply_deltas"
    )


def test_a_delta_codec_as_a_compressor_sends_every_page_through_its_fall_back():
    """Nothing known of the destination: the composition's blob holds the fall-back's
    pages only, and decodes without the destination's pages."""
    from migcodec.codecs import get_codec

    codec = get_codec("xbzrle")
    pages = np.tile(np.arange(PAGE, dtype=np.uint32).view(np.uint8)[:PAGE], (3, 1))
    encoding = codec.encode_pages(pages)
    assert encoding.modes.tolist() == [3, 3, 3]  # FALLBACK
    blob = b"".join(encoding.blob)
    decoded = codec.decode_pages(memoryview(blob), 3, PAGE)
    np.testing.assert_array_equal(np.asarray(decoded).reshape(3, PAGE), pages)
