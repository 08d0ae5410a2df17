"""The evaluation picture: chosen arm per window against the oracle's, and cumulative reward.

matplotlib is imported only when a plot is drawn, so evaluating without ``--plot`` never
needs it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from migcodec.plotting import pyplot
from migcodec.selector.evaluation.replay import Evaluation


def plot_evaluation(ev: Evaluation, path: str | Path, max_policies: int = 6) -> Path:
    """Write a PNG with two panels; the best ``max_policies`` adaptive policies are drawn."""
    plt = pyplot()
    adaptive = [
        (s, r)
        for s, r in zip(ev.scores, ev.results, strict=True)
        if not s.label.startswith("fixed")
    ]
    adaptive.sort(key=lambda sr: -sr[0].vs_oracle)
    shown = adaptive[:max_policies]
    best_fixed = (ev.scores[ev.best_fixed], ev.results[ev.best_fixed])
    windows = np.arange(ev.oracle_arms.size)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    top.step(
        windows,
        ev.oracle_arms,
        where="mid",
        color="black",
        lw=2.5,
        alpha=0.35,
        label="per-window oracle",
    )
    for k, (score, result) in enumerate(shown[:3]):
        offset = (k + 1) * 0.08
        top.plot(windows, result.chosen + offset, ".", ms=5, label=score.label[:40])
    top.set_yticks(range(len(ev.labels)), ev.labels)
    top.set_ylabel("arm")
    top.set_title(f"chosen arm per window ({ev.objective.get_config()})", fontsize=9)
    top.legend(fontsize=7, loc="upper right")
    oracle_cum = np.cumsum(ev.oracle_rewards)
    for score, result in [*shown, best_fixed]:
        bottom.plot(
            windows,
            np.cumsum(result.rewards) / oracle_cum[-1],
            label=f"{score.label[:40]} ({score.vs_oracle:.3f} of oracle)",
        )
    bottom.plot(
        windows, oracle_cum / oracle_cum[-1], color="black", lw=2, alpha=0.4, label="oracle"
    )
    bottom.set_xlabel("window")
    bottom.set_ylabel("cumulative reward / oracle total")
    bottom.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
