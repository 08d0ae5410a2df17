"""How ``migrate`` and ``send`` show a migration as it runs, on stderr.

A terminal gets a tqdm bar per iteration: that iteration's pages sent, the dirty pages
left, and the rates of guest data and of bytes on the wire. The line is laid out for the
terminal's width (``COLUMNS`` if set, else the width of the terminal stderr writes to): the
numbers are shortened, then the least useful dropped, until a bar of at least
:data:`MIN_BAR` characters fits, so the line is never cut and the bar never shrinks to a
sliver. Filling a large guest before the migration gets a bar too.

A log file or a pipe gets one plain line per iteration instead, because a redrawn bar there
is noise. ``--json`` and ``--quiet`` show nothing, so stdout and stderr stay clean for
scripts. The engine calls the display at most ~10 times a second
(:class:`~migcodec.engine.progress.ProgressTicker`), so drawing never slows the migration.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from migcodec.engine.progress import MigrationProgress

#: the bar is never narrower than this; text is shortened or dropped first
MIN_BAR = 10
#: a terminal's width when nothing says otherwise
DEFAULT_COLUMNS = 80
#: seconds a guest fill must take before its bar appears (small guests fill in a blink)
FILL_BAR_DELAY_S = 0.5


def terminal_columns() -> int:
    """``COLUMNS`` when set (the user's override), else the width of stderr's terminal."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return shutil.get_terminal_size((DEFAULT_COLUMNS, 24)).columns


def _stage(p: MigrationProgress) -> str:
    return "stop-and-copy" if p.stop_and_copy else f"iteration {p.iteration}"


def _numbers(p: MigrationProgress) -> str:
    return (
        f"{p.dirty_pages_left} dirty pages left, {p.rate / 1e6:.1f} MB/s guest data, "
        f"{p.wire_rate / 1e6:.1f} MB/s on the wire"
    )


def _tails(p: MigrationProgress) -> list[str]:
    """What follows the bar, most to least detailed; the rates go last."""
    guest, wire = p.rate / 1e6, p.wire_rate / 1e6
    counts = f"{p.pages_sent}/{p.iteration_pages} pages"
    return [
        f"{counts}, {p.dirty_pages_left} dirty left, {guest:.1f} MB/s guest, {wire:.1f} MB/s wire",
        f"{counts}, {p.dirty_pages_left} dirty, {guest:.0f} MB/s guest, {wire:.0f} MB/s wire",
        f"{p.dirty_pages_left} dirty, {guest:.0f} MB/s guest, {wire:.0f} MB/s wire",
        f"{guest:.0f}/{wire:.0f} MB/s guest/wire",
        f"{guest:.0f}/{wire:.0f} MB/s",
        "",
    ]


def bar_layout(desc: str, p: MigrationProgress, columns: int) -> str:
    """A tqdm ``bar_format`` for one line of at most ``columns - 1`` characters (the last
    column is left free: writing it makes some terminals wrap) with a bar of at least
    :data:`MIN_BAR` characters, keeping as much of the text as fits."""
    width = columns - 1
    for tail in _tails(p):
        text = f"{desc}: {p.pages_sent / max(p.iteration_pages, 1):4.0%}||" + (
            f" {tail}" if tail else ""
        )
        if len(text) + MIN_BAR <= width or not tail:
            escaped = tail.replace("{", "{{").replace("}", "}}")
            return (
                f"{desc.replace('{', '{{').replace('}', '}}')}: {{percentage:3.0f}}%|{{bar}}|"
                + (f" {escaped}" if escaped else "")
            )
    raise AssertionError("unreachable: the last layout has no tail")


class ProgressDisplay:
    """A progress callback for one migration; use it as a context manager."""

    def __init__(self, enabled: bool = True, label: str = "") -> None:
        self.enabled = enabled
        self._label = f"{label}: " if label else ""
        self._bar: Any = None  # made at the first call, which knows the first iteration's size
        self._fill_bar: Any = None
        self._iteration = -1

    def fill(self, done: int, total: int) -> None:
        """``progress(pages_filled, total)`` while the guest's memory is filled: a bar on a
        terminal once filling takes longer than :data:`FILL_BAR_DELAY_S`, nothing in a log
        (the migration's lines follow within seconds)."""
        if not self.enabled:
            return
        if self._fill_bar is None:
            from tqdm import tqdm

            self._fill_bar = tqdm(
                desc=f"{self._label}filling guest memory",
                total=total,
                unit=" pages",
                file=sys.stderr,
                disable=None,  # off when stderr is not a terminal
                delay=FILL_BAR_DELAY_S,
                mininterval=0,  # a call per 64 MiB filled: draw each
                miniters=1,
                leave=False,
                ncols=terminal_columns() - 1,
            )
        self._fill_bar.update(done - self._fill_bar.n)
        if done >= total:
            self._fill_bar.close()

    def __call__(self, p: MigrationProgress) -> None:
        if not self.enabled:
            return
        desc = f"{self._label}{_stage(p)}"
        columns = terminal_columns()  # read each time: the terminal may have been resized
        if self._bar is None:
            from tqdm import tqdm

            # disable=None: tqdm turns the bar off by itself when stderr is not a terminal
            self._bar = tqdm(
                total=p.iteration_pages,
                file=sys.stderr,
                disable=None,
                bar_format=bar_layout(desc, p, columns),
                ncols=columns - 1,
                dynamic_ncols=False,
            )
            self._iteration = p.iteration
        if self._bar.disable:
            if p.iteration_done:
                print(
                    f"{desc}: {p.pages_sent} pages sent, {_numbers(p)}",
                    file=sys.stderr,
                    flush=True,
                )
            return
        if p.iteration != self._iteration:  # a new bar: its own total and elapsed time
            self._iteration = p.iteration
            self._bar.reset(total=p.iteration_pages)
        self._bar.ncols = columns - 1
        self._bar.bar_format = bar_layout(desc, p, columns)
        self._bar.n = p.pages_sent
        self._bar.refresh()

    def close(self) -> None:
        for bar in (self._fill_bar, self._bar):
            if bar is not None:
                bar.close()

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
