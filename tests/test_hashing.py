"""The running digest equals the one-shot memory digest, whatever the order of writes."""

import numpy as np

from migcodec.hashing import RunningDigest, memory_digest

MIB = 1 << 20


def test_a_buffer_written_in_order_digests_as_a_whole():
    source = np.random.default_rng(0).integers(0, 256, 3 * MIB + 4096 * 5, dtype=np.uint8)
    memory = np.zeros_like(source)
    running = RunningDigest(memory)
    step = 64 * 4096
    for offset in range(0, memory.size, step):
        memory[offset : offset + step] = source[offset : offset + step]
        running.written(offset)
        running.advance(offset + step)
    assert running.digest() == memory_digest(source)


def test_writes_below_the_hashed_prefix_are_hashed_again():
    rng = np.random.default_rng(1)
    memory = rng.integers(0, 256, 5 * MIB + 12288, dtype=np.uint8)
    for _ in range(20):
        running = RunningDigest(memory)
        for _ in range(30):
            if rng.random() < 0.5:
                running.advance(int(rng.integers(0, memory.size + 10)))
            else:
                offset = int(rng.integers(0, memory.size))
                memory[offset : offset + int(rng.integers(1, 300_000))] ^= 1
                running.written(offset)
        assert running.digest() == memory_digest(memory)


def test_a_rewind_restarts_from_the_checkpoint_below_the_write():
    memory = np.ones(4 * MIB, np.uint8)
    running = RunningDigest(memory, max_checkpoints=4)  # a checkpoint every MiB
    running.advance(3 * MIB + 5)
    memory[2 * MIB + 7] = 9
    running.written(2 * MIB + 7)
    assert running.hashed == 2 * MIB
    running.written(4 * MIB - 1)  # above what is hashed: nothing to forget
    assert running.hashed == 2 * MIB
    assert running.digest() == memory_digest(memory)
