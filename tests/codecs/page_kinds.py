"""Batches of mixed page kinds for hypothesis round trips of the accelerator plugins."""

import numpy as np
from hypothesis import strategies as st

PAGE = 4096

#: a batch as a list of page kinds: zero, one repeated byte, text, random, sparse words
page_kinds = st.lists(
    st.sampled_from(["zero", "ones", "text", "random", "sparse"]), min_size=1, max_size=24
)


def build_pages(kinds: list[str], seed: int) -> np.ndarray:
    """One page per kind, deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    memory = np.zeros((len(kinds), PAGE), np.uint8)
    for i, kind in enumerate(kinds):
        if kind == "ones":
            memory[i] = 1
        elif kind == "text":
            memory[i] = np.frombuffer((b"dirty page %d " % i) * 400, np.uint8)[:PAGE]
        elif kind == "random":
            memory[i] = rng.integers(0, 256, PAGE, dtype=np.uint8)
        elif kind == "sparse":
            memory[i, rng.integers(0, PAGE, 8)] = rng.integers(1, 256, 8)
    return memory
