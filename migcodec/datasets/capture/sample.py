"""Bounding a window's size: a uniform random sample of its dirty pages.

A busy program can dirty tens of thousands of pages in one window; storing them all makes
traces too large to keep in a repository. A sampled window stores ``max_pages`` of them,
chosen uniformly without replacement, and records the true count in
:attr:`Window.dirty_pages`, so a policy can be scored at the window's real size
(:attr:`Window.scale`). Each window's sample depends only on the seed, the window's index
and its dirty page numbers, so a capture of the same pages re-draws the same sample.
"""

from __future__ import annotations

import numpy as np

from migcodec.datasets.window import Window


def sample_rng(seed: int, window_index: int) -> np.random.Generator:
    """The generator for one window: independent of how many windows came before."""
    return np.random.default_rng((seed, window_index))


def sample_mask(n: int, max_pages: int, rng: np.random.Generator) -> np.ndarray | None:
    """A boolean mask over ``n`` pages with exactly ``max_pages`` set, uniformly chosen;
    ``None`` when ``n <= max_pages`` (keep every page)."""
    if max_pages < 1:
        raise ValueError(f"max_pages must be at least 1, got {max_pages}")
    if n <= max_pages:
        return None
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=max_pages, replace=False)] = True
    return mask


def sample_window(window: Window, max_pages: int, seed: int = 0) -> Window:
    """``window`` itself when it holds at most ``max_pages`` pages, else a new window of
    a uniform sample of exactly ``max_pages`` of its pages (ascending, with their
    ``previous`` rows) whose ``dirty_pages`` is the true count.

    A window that is already a sample keeps its true count, so sampling twice never
    loses it.
    """
    mask = sample_mask(window.n_pages, max_pages, sample_rng(seed, window.index))
    if mask is None:
        return window
    true_count = window.n_pages if window.dirty_pages is None else window.dirty_pages
    return Window(
        index=window.index,
        page_indices=window.page_indices[mask],
        pages=window.pages[mask],
        previous=None if window.previous is None else window.previous[mask],
        phase=window.phase,
        duration_s=window.duration_s,
        meta=dict(window.meta),
        dirty_pages=int(true_count),
    )
