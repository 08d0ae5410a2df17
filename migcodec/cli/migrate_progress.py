"""How ``migrate`` and ``send`` show a migration as it runs, on stderr.

A terminal gets a tqdm bar per iteration: that iteration's pages sent, the dirty pages
left, and the rates. A log file or a pipe gets one plain line per iteration instead,
because a redrawn bar there is noise. ``--json`` and ``--quiet`` show nothing, so stdout
and stderr stay clean for scripts. The engine calls the display at most ~10 times a second
(:class:`~migcodec.engine.progress.ProgressTicker`), so drawing never slows the migration.
"""

from __future__ import annotations

import sys

from migcodec.engine.progress import MigrationProgress

_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} pages [{elapsed}{postfix}]"


def _stage(p: MigrationProgress) -> str:
    return "stop-and-copy" if p.stop_and_copy else f"iteration {p.iteration}"


def _numbers(p: MigrationProgress) -> str:
    return (
        f"{p.dirty_pages_left} dirty pages left, {p.rate / 1e6:.1f} MB/s guest data, "
        f"{p.wire_rate / 1e6:.1f} MB/s on the wire"
    )


class ProgressDisplay:
    """A progress callback for one migration; use it as a context manager."""

    def __init__(self, enabled: bool = True, label: str = "") -> None:
        self.enabled = enabled
        self._label = f"{label}: " if label else ""
        self._bar = None  # made at the first call, which knows the first iteration's size
        self._iteration = -1

    def __call__(self, p: MigrationProgress) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            # disable=None: tqdm turns the bar off by itself when stderr is not a terminal
            self._bar = tqdm(
                desc=f"{self._label}{_stage(p)}",
                total=p.iteration_pages,
                file=sys.stderr,
                disable=None,
                bar_format=_BAR,
                dynamic_ncols=True,
            )
            self._iteration = p.iteration
        if self._bar.disable:
            if p.iteration_done:
                print(
                    f"{self._label}{_stage(p)}: {p.pages_sent} pages sent, {_numbers(p)}",
                    file=sys.stderr,
                    flush=True,
                )
            return
        self._bar.set_postfix_str(_numbers(p), refresh=False)
        if p.iteration != self._iteration:  # a new bar: its own total and elapsed time
            self._iteration = p.iteration
            self._bar.set_description_str(f"{self._label}{_stage(p)}", refresh=False)
            self._bar.reset(total=p.iteration_pages)
        self._bar.n = p.pages_sent
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
