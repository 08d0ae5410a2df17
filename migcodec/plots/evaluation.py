"""The evaluation picture: chosen arm per window against the oracle's, and cumulative reward.

matplotlib is imported only when a plot is drawn, so evaluating without ``--plot`` never
needs it.

What is drawn says what it is: the bottom panel's curves are cumulative sums of per-window
rewards over the oracle's sum, so each legend entry gives the number its curve ends at
(``sum``) beside the policy's total over the oracle's total (``total``, the score
``evaluate`` ranks by); policy names too long for a legend are shortened at a parameter boundary,
never mid-word; windows are counted in whole numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from migcodec.plots import pyplot, save_figure
from migcodec.selector.evaluation.replay import Evaluation

#: legend entries longer than this are shortened at a parameter boundary
LABEL_CHARS = 40


def short_label(label: str, limit: int = LABEL_CHARS) -> str:
    """``label`` if it fits in ``limit`` characters, else cut after the last whole
    parameter (``, `` or ``(``) that fits, with ``…`` for what was left out."""
    if len(label) <= limit:
        return label
    head = label[: limit - 1]
    cut = max(head.rfind(", "), head.rfind("("))
    if cut > 0:
        keep = head[: cut + 1] if head[cut] == "(" else head[:cut]
        return f"{keep}…" if keep.endswith("(") else f"{keep}, …"
    space = head.rfind(" ")
    return f"{head[:space] if space > 0 else head}…"


def objective_text(config: dict[str, Any]) -> str:
    """``throughput at 10 Gbit/s, 2 workers``: an objective's config as a person says it."""
    params = {k: v for k, v in config.items() if k != "name"}
    words = [str(config.get("name", "objective"))]
    link = params.pop("link", None)
    if isinstance(link, int | float):
        words.append(f"at {link * 8 / 1e9:g} Gbit/s")
    workers = params.pop("workers", None)
    if workers is not None:
        words.append(f"{workers:g} worker{'s' if workers != 1 else ''}")
    words += [f"{k}={v}" for k, v in sorted(params.items())]
    return words[0] + (" " + ", ".join(words[1:]) if len(words) > 1 else "")


def plot_evaluation(ev: Evaluation, path: str | Path, max_policies: int = 6) -> Path:
    """Write a PNG with two panels; the best ``max_policies`` adaptive policies are drawn."""
    plt = pyplot()
    return save_figure(plt, evaluation_figure(ev, max_policies), path)


def evaluation_figure(ev: Evaluation, max_policies: int = 6) -> Any:
    """The figure :func:`plot_evaluation` writes (a matplotlib ``Figure``; the caller
    closes it)."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

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
        top.plot(windows, result.chosen + offset, ".", ms=5, label=short_label(score.label))
    top.set_yticks(range(len(ev.labels)), ev.labels)
    top.set_ylabel("arm")
    top.set_title(
        f"chosen arm per window ({objective_text(ev.objective.get_config())})", fontsize=9
    )
    top.legend(fontsize=7, loc="upper right")
    oracle_cum = np.cumsum(ev.oracle_rewards)
    for score, result in [*shown, best_fixed]:
        curve = np.cumsum(result.rewards) / oracle_cum[-1]
        bottom.plot(
            windows,
            curve,
            # "sum": where the curve ends; "total": the score evaluate ranks by
            label=f"{short_label(score.label)}: sum {curve[-1]:.3f}, total {score.vs_oracle:.3f}",
        )
    bottom.plot(
        windows, oracle_cum / oracle_cum[-1], color="black", lw=2, alpha=0.4, label="oracle"
    )
    bottom.set_xlabel("window")
    bottom.set_ylabel("cumulative reward / oracle's sum")
    bottom.legend(
        fontsize=7,
        loc="upper left",
        title="policy: sum and total, each over the oracle's",
        title_fontsize=7,
    )
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))  # windows come whole
    fig.tight_layout()
    return fig
