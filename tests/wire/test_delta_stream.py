"""Delta codecs through the wire: several iterations, codecs switching per batch.

Delta frames are only correct where the destination holds the cache's version; a page sent
by another codec must be noted (or forgotten) by the delta codec, as a selector would do.
"""

import io

import numpy as np

from migcodec.codecs import Batch, get_codec
from migcodec.wire import FrameReader, FrameWriter, memory_digest

PAGE = 4096


def test_stream_of_delta_frames_over_iterations_keeps_memories_equal():
    rng = np.random.default_rng(21)
    memory = rng.integers(0, 256, (128, PAGE), dtype=np.uint8) // 4
    memory[::9] = 0
    dsa, xbz, lz4 = get_codec("dsa-delta"), get_codec("xbzrle"), get_codec("lz4")
    out = io.BytesIO()
    writer = FrameWriter(out, PAGE, 128, [dsa, xbz, lz4])
    for iteration in range(4):
        if iteration:  # the guest dirties 2 % of the words between iterations
            words = memory.view(np.uint64)
            words[rng.random(words.shape) < 0.02] ^= np.uint64(0xFF00FF)
        for i, first in enumerate(range(0, 128, 32)):
            codec = (dsa, xbz, lz4, dsa)[(i + iteration) % 4]
            batch = Batch(memory, [(first, 32)])
            writer.write_batch(codec.encode(batch))
            for other in (dsa, xbz):  # keep the other delta caches truthful
                if other is not codec:
                    other.note_sent(batch.page_indices, memory[first : first + 32])
        writer.end_iteration(iteration, 128)
    writer.end_stream(memory_digest(memory))
    dest = np.zeros_like(memory)
    summary = FrameReader(io.BytesIO(out.getvalue())).receive(dest)
    np.testing.assert_array_equal(dest, memory)
    assert summary.digest_verified and summary.iterations == 4
    assert set(summary.pages_by_codec) == {"dsa-delta", "xbzrle", "lz4"}
