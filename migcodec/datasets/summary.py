"""What a trace holds, per phase: dirty pages, zero pages, changed words and codec ratios.

Ratios are sampled (a fixed number of random pages per window, encoded as 64-page batches
with each codec), so a summary of a large trace costs seconds, not a full evaluation. The
changed-word fraction (8-byte words that differ from ``previous``) predicts what a delta
codec would send; it is only known for windows that carry ``previous``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from migcodec.codecs import Batch, get_codec, zero_page_mask
from migcodec.codecs.bounded import codec_watch
from migcodec.datasets.window import Window

DEFAULT_CODECS = ("lz4", "zstd", "zlib-ng")


@dataclass
class PhaseSummary:
    """Totals of every window of one phase name (phases that recur are merged)."""

    name: str | None
    windows: int = 0
    pages: int = 0
    zero_pages: int = 0
    changed_words: int = 0
    compared_words: int = 0
    codec_in: dict[str, int] = field(default_factory=dict)
    codec_out: dict[str, int] = field(default_factory=dict)

    @property
    def pages_per_window(self) -> float:
        return self.pages / self.windows if self.windows else 0.0

    @property
    def zero_fraction(self) -> float:
        return self.zero_pages / self.pages if self.pages else 0.0

    @property
    def changed_word_fraction(self) -> float | None:
        return self.changed_words / self.compared_words if self.compared_words else None

    def ratio(self, codec: str) -> float | None:
        out = self.codec_out.get(codec, 0)
        return self.codec_in[codec] / out if out else None

    def as_dict(self) -> dict:
        return {
            "phase": self.name,
            "windows": self.windows,
            "pages_per_window": self.pages_per_window,
            "zero_fraction": self.zero_fraction,
            "changed_word_fraction": self.changed_word_fraction,
            "ratios": {c: self.ratio(c) for c in self.codec_in},
        }


def summarize(
    windows: Iterable[Window],
    codecs: Sequence[str] = DEFAULT_CODECS,
    sample_pages: int = 256,
    seed: int = 0,
) -> list[PhaseSummary]:
    """Per-phase summaries in order of first appearance; one pass over ``windows``."""
    rng = np.random.default_rng(seed)
    arms = {name: get_codec(name) for name in codecs}
    watch = codec_watch()  # each encode watched: a bounded unit names one that never returns
    phases: dict[str | None, PhaseSummary] = {}
    for window in windows:
        s = phases.setdefault(window.phase, PhaseSummary(window.phase))
        s.windows += 1
        s.pages += window.n_pages
        if window.n_pages == 0:
            continue
        s.zero_pages += int(np.count_nonzero(zero_page_mask(window.pages)))
        if window.previous is not None:
            changed = window.pages.view("<u8") != window.previous.view("<u8")
            s.changed_words += int(np.count_nonzero(changed))
            s.compared_words += changed.size
        k = min(sample_pages, window.n_pages)
        rows = np.sort(rng.choice(window.n_pages, size=k, replace=False))
        sample = np.ascontiguousarray(window.pages[rows])
        for name, codec in arms.items():
            for first in range(0, k, 64):  # one request per 64 pages, as the engine sends
                n = min(64, k - first)
                batch = Batch(sample, [(first, n)], window.page_size)
                stats = watch.calling(codec, "encode", codec.encode, batch).stats
                s.codec_in[name] = s.codec_in.get(name, 0) + stats.input_bytes
                s.codec_out[name] = s.codec_out.get(name, 0) + stats.output_bytes
    return list(phases.values())
