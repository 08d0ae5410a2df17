"""Delta codecs through the wire: several iterations, codecs switching per batch.

Delta frames are only correct where the destination holds the mirror's version: every codec
of the stream encodes with the stream's one mirror, which hears of every batch, whether it
records other codecs' pages or only forgets them.
"""

import io

import numpy as np
import pytest

from migcodec.codecs import Batch, DestinationMirror, get_codec
from migcodec.wire import FrameReader, FrameWriter, memory_digest

PAGE = 4096


@pytest.mark.parametrize("recording", [True, False])
def test_stream_of_delta_frames_over_iterations_keeps_memories_equal(recording):
    rng = np.random.default_rng(21)
    memory = rng.integers(0, 256, (128, PAGE), dtype=np.uint8) // 4
    memory[::9] = 0
    dsa, xbz, lz4 = get_codec("dsa-delta"), get_codec("xbzrle"), get_codec("lz4")
    out = io.BytesIO()
    writer = FrameWriter(out, PAGE, 128, [dsa, xbz, lz4])
    mirror = DestinationMirror(PAGE, recording=recording)
    for iteration in range(4):
        if iteration:  # the guest dirties 2 % of the words between iterations
            words = memory.view(np.uint64)
            words[rng.random(words.shape) < 0.02] ^= np.uint64(0xFF00FF)
        for i, first in enumerate(range(0, 128, 32)):
            codec = (dsa, xbz, lz4, dsa)[(i + iteration) % 4]
            writer.write_batch(codec.encode(Batch(memory, [(first, 32)]), destination=mirror))
        writer.end_iteration(iteration, 128)
    writer.end_stream(memory_digest(memory))
    dest = np.zeros_like(memory)
    summary = FrameReader(io.BytesIO(out.getvalue())).receive(dest)
    np.testing.assert_array_equal(dest, memory)
    assert summary.digest_verified and summary.iterations == 4
    assert set(summary.pages_by_codec) == {"dsa-delta", "xbzrle", "lz4"}
