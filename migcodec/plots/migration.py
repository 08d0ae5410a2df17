"""Pictures for ``migcodec migrate --plot``: one migration's iterations, or a dirty-rate sweep.

A single run shows why it converged or not: pre-copy converges only while each pass sends
pages faster than the guest dirties them, so the picture puts pages sent and pages left
beside the rate each pass achieved and the dirty rate it had to beat. matplotlib is
imported only when a plot is drawn (:func:`migcodec.plots.pyplot`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from migcodec.engine.report import MigrationReport
from migcodec.plots import pyplot, save_figure
from migcodec.units import counted

MB = 1e6


def _link(rate: float | None) -> str:
    if rate is None:
        return "unlimited link"
    bits = rate * 8
    return f"{bits / 1e9:g} Gbit/s link" if bits >= 1e9 else f"{bits / 1e6:g} Mbit/s link"


def _setting(report: MigrationReport) -> str:
    """Which guest, codec and link: the part of a title every run of a sweep shares."""
    guest = f"{report.workload} guest" if report.workload else "guest"
    size = f"{report.memory_bytes / 2**20:g} MiB"
    return f"{guest} of {size}, {report.codec}, {_link(report.link_rate)}"


def _outcome(report: MigrationReport) -> str:
    if report.succeeded:
        down = report.downtime_s or 0.0
        return (
            f"converged: {counted(report.iterations, 'iteration')}, downtime {down * 1000:.0f} ms, "
            f"{report.total_time_s:.2f} s in all"
        )
    if report.converged:
        return f"converged but failed: {report.error}"
    return f"did not converge ({counted(report.iterations, 'iteration')})"


def plot_migration(report: MigrationReport, path: str | Path) -> Path:
    """Write a PNG of one migration: pages and rates per pre-copy iteration over time."""
    plt = pyplot()
    log = report.iteration_log
    fig, (pages_ax, rate_ax) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    starts = [r.start_s for r in log]
    widths = [max(r.duration_s, 1e-4) for r in log]
    ends = [r.end_s for r in log]
    codecs = sorted({name for r in log for name in r.pages_by_codec})
    bottom = [0] * len(log)
    for name in codecs:
        sent = [r.pages_by_codec.get(name, 0) for r in log]
        pages_ax.bar(
            starts,
            sent,
            widths,
            bottom=bottom,
            align="edge",
            alpha=0.6,
            edgecolor="black",
            linewidth=0.5,
            label=f"sent ({name})",
        )
        bottom = [b + s for b, s in zip(bottom, sent, strict=True)]
    pages_ax.plot(
        ends, [r.dirty_pages_left for r in log], "ko-", ms=4, label="dirty pages left after it"
    )
    pages_ax.set_yscale("symlog", linthresh=1)
    pages_ax.set_ylabel("pages per iteration")
    guest = [r.pages_sent * report.page_size / w / MB for r, w in zip(log, widths, strict=True)]
    wire = [r.wire_bytes / w / MB for r, w in zip(log, widths, strict=True)]
    mids = [s + w / 2 for s, w in zip(starts, widths, strict=True)]
    rate_ax.hlines(guest, starts, ends, colors="tab:blue", lw=2)
    rate_ax.plot(mids, guest, "o", color="tab:blue", label="guest data MB/s")
    rate_ax.hlines(wire, starts, ends, colors="tab:orange", lw=2)
    rate_ax.plot(mids, wire, "s", color="tab:orange", label="wire MB/s")
    if report.dirty_rate:
        rate_ax.axhline(
            report.dirty_rate / MB, color="tab:red", ls="--", label="dirty rate asked of the guest"
        )
    if report.link_rate:
        rate_ax.axhline(report.link_rate / MB, color="gray", ls=":", label="link rate")
    rate_ax.set_ylim(bottom=0)
    rate_ax.set_ylabel("MB/s")
    rate_ax.set_xlabel("seconds since the migration started")
    final = log[-1] if log and log[-1].stop_and_copy else None
    if final is not None:
        down = report.downtime_s if report.downtime_s is not None else final.duration_s
        for ax in (pages_ax, rate_ax):
            ax.axvspan(
                final.start_s,
                final.start_s + down,
                color="gray",
                alpha=0.25,
                label=f"stop-and-copy: downtime {down * 1000:.0f} ms",
            )
    if not log:
        pages_ax.text(0.5, 0.5, "no iteration ran", ha="center", transform=pages_ax.transAxes)
    for ax in (pages_ax, rate_ax):
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(
        f"{_setting(report)}, dirty {report.dirty_rate / MB:g} MB/s\n{_outcome(report)}",
        fontsize=10,
    )
    return _save(plt, fig, path)


def plot_sweep(runs: Sequence[MigrationReport], largest: float, path: str | Path) -> Path:
    """Write a PNG of a dirty-rate sweep: each rate tried, whether it converged, and the
    throughput each run reached against the dirty rate it had to outrun."""
    plt = pyplot()
    fig, (ok_ax, rate_ax) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [1, 3]}
    )
    for succeeded, style, label in ((True, "go", "converged"), (False, "rx", "did not converge")):
        chosen = [r for r in runs if r.succeeded == succeeded]
        rates = [r.dirty_rate / MB for r in chosen]
        ok_ax.plot(rates, [int(succeeded)] * len(chosen), style, ms=8)
        throughput = [
            r.guest_bytes_sent / r.total_time_s / MB if r.total_time_s else 0.0 for r in chosen
        ]
        rate_ax.plot(rates, throughput, style, ms=7, label=label)
    ok_ax.set_yticks([0, 1], ["no", "yes"])
    ok_ax.set_ylim(-0.5, 1.5)
    ok_ax.set_ylabel("converged")
    tried = [r.dirty_rate / MB for r in runs]
    if tried:
        span = np.geomspace(min(tried), max(tried), 32)  # a curve on the log axis
        rate_ax.plot(span, span, color="tab:red", ls="--", lw=1, label="throughput = dirty rate")
        rate_ax.set_xscale("log", base=2)  # the sweep doubles, then bisects
        rate_ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    if runs and runs[0].link_rate:
        rate_ax.axhline(runs[0].link_rate / MB, color="gray", ls=":", label="link rate")
    if largest:
        for ax in (ok_ax, rate_ax):
            ax.axvline(largest / MB, color="tab:green", lw=1, label="largest migratable")
    rate_ax.set_ylim(bottom=0)
    rate_ax.set_xlabel("dirty rate tried (MB/s)")
    rate_ax.set_ylabel("guest data MB/s over the whole migration")
    rate_ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    setting = _setting(runs[0]) if runs else "no runs"
    fig.suptitle(
        f"{setting}\nlargest migratable dirty rate {largest / MB:g} MB/s ({len(runs)} runs)",
        fontsize=10,
    )
    return _save(plt, fig, path)


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    return save_figure(plt, fig, path)
