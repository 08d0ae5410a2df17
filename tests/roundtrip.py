"""The round-trip check every codec test makes: decode writes exactly the named pages."""

import numpy as np

from migcodec.codecs import Batch, Codec, Encoded


def assert_round_trips_only_the_named_pages(codec: Codec, memory: np.ndarray, runs) -> Encoded:
    """Encode ``runs`` of ``memory``, decode into a destination filled with 0xA5: the named
    pages equal the source byte for byte and every other page still reads 0xA5."""
    batch = Batch(memory, runs)
    encoded = codec.encode(batch)
    dest = np.full_like(memory, 0xA5)
    codec.decode(encoded, dest)
    named = batch.page_indices
    np.testing.assert_array_equal(dest[named], memory[named])
    untouched = np.ones(memory.shape[0], bool)
    untouched[named] = False
    assert (dest[untouched] == 0xA5).all()
    return encoded
