"""The cheap features as numpy computed them before the one-pass scan, kept as the
definition the scan's results are checked against (a call per step, on a gathered sample)."""

import numpy as np

from migcodec.codecs.changes import PageChanges, page_changes
from migcodec.codecs.zero import zero_page_rows
from migcodec.selector.features import FeatureExtractor, byte_entropy, sample_rows


def reference_cheap(
    fx: FeatureExtractor,
    pages: np.ndarray,
    previous: np.ndarray | None = None,
    sampled: bool = False,
    window_pages: float | None = None,
    held: np.ndarray | None = None,
) -> dict:
    """Every cheap field of ``fx.extract(..., probe=False)`` but ``cheap_s``, by the
    numpy steps it used to take."""
    n, page_size = pages.shape
    total = float(n if window_pages is None else window_pages)
    size = n if sampled else min(n, fx.sample_size(int(total)))
    rows = sample_rows(n, size)
    if not rows.size:
        return {"context": [1.0, 0.0, 0.0, 1.0, 0.0], "pages": total}
    every = rows.size == n
    sample = pages if every else pages[rows]
    zero = zero_page_rows(sample)
    nz_idx = None if zero is None else np.flatnonzero(~zero)
    m = rows.size if nz_idx is None else nz_idx.size
    zero_frac = 1.0 - m / rows.size
    entropy = 0.0
    if m:
        ends = (0, m - 1) if nz_idx is None else (int(nz_idx[0]), int(nz_idx[-1]))
        pair = sample[ends[0] : ends[0] + 1] if ends[0] == ends[1] else sample[list(ends)]
        entropy = byte_entropy(pair, 7) / 8.0
    delta, held_frac, changed_frac, change_runs = None, 0.0, 1.0, 0.0
    words_var = words_runs_cov = 0.0
    has_previous = previous is not None and m > 0
    if has_previous:
        changes = page_changes(pages, previous, None if every else rows)
        keep = None if zero is None else ~zero
        if held is not None:
            known = np.asarray(held) if every else np.asarray(held)[rows]
            keep = known if keep is None else keep & known
        if keep is not None and not keep.all():
            changes = PageChanges(*(c[keep] for c in changes))
        n_known = changes.words.size
        if n_known:
            held_frac = n_known / m
            changed_frac = float(changes.words.sum()) / (n_known * (page_size // 8))
            change_runs = float(changes.byte_runs.sum()) / n_known
            # two-pass moments (the extractor takes them from running sums)
            words, runs = changes.words.astype(float), changes.byte_runs.astype(float)
            words_var = float(np.var(words))
            words_runs_cov = float(np.mean((words - words.mean()) * (runs - runs.mean())))
            delta = np.full(len(fx.codecs), np.nan)
            for i, codec in enumerate(fx._deltas):
                if codec is not None:
                    delta[i] = float(codec.estimate_sizes(changes, page_size).sum()) / n_known
    return {
        "context": [1.0, zero_frac, entropy, changed_frac, float(has_previous)],
        "pages": total,
        "sample": int(rows.size),
        "held_frac": held_frac,
        "delta_bytes": delta,
        "change_runs": change_runs,
        "words_var": words_var,
        "words_runs_cov": words_runs_cov,
        "probe_pages": min(m, fx.probe_size(total)),
    }
