"""Capture a live process into a trace, one window per interval, with a progress bar."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from migcodec.datasets.trace import TraceWriter

from .process import ProcessCapture, method_note
from .procfs import CaptureError, MappingFilter, ProcessReplaced


@dataclass(frozen=True)
class CaptureResult:
    """What a capture wrote: ``dirty_pages`` counts every page dirtied in its windows,
    ``stored_pages`` the pages kept (fewer when ``max_pages`` sampled some windows)."""

    path: Path
    windows: int
    method: str
    method_note: str
    end_reason: str
    dirty_pages: int
    stored_pages: int
    sampled_windows: int


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def capture_to_trace(
    pid: int,
    out: str | os.PathLike,
    windows: int,
    interval_s: float,
    *,
    select: MappingFilter | None = None,
    method: str = "auto",
    codec: str = "zstd",
    progress: bool = True,
    overwrite: bool = False,
    command: str | None = None,
    max_pages: int | None = None,
    seed: int = 0,
) -> CaptureResult:
    """Capture ``windows`` windows of ``interval_s`` each from process ``pid`` into ``out``.

    Ticks are scheduled from the start time (a slow snapshot shortens the next wait instead
    of drifting). If the process exits, the trace ends cleanly with the windows so far and
    ``end_reason`` says so; before the first window, that is a :class:`CaptureError`.
    Snapshots are not atomic: the process keeps running while its pages are read, as a
    guest does during pre-copy.

    ``max_pages`` bounds each stored window (a uniform sample, seeded by ``seed`` and the
    window's index, with the true count in ``Window.dirty_pages``), so a long capture of a
    busy program stays small; both are recorded in the manifest's metadata.
    """
    from tqdm import tqdm

    cap = ProcessCapture(pid, select=select, method=method, max_pages=max_pages, seed=seed)
    end_reason = "done"
    dirty = stored = sampled = 0
    written = 0
    try:
        cap.start()
        note = method_note(cap.method)  # start() settles an "auto" method
        writer = TraceWriter(
            out,
            memory_pages=max(cap.layout.n_pages, 1),
            page_size=cap.page_size,
            window_s=interval_s,
            source=f"capture:pid {pid}: {_cmdline(pid)}",
            command=command,
            codec=codec,
            overwrite=overwrite,
            expected_windows=windows,
        )
        with writer, tqdm(total=windows, unit="win", disable=not progress) as bar:
            t0 = time.monotonic()
            for i in range(windows):
                delay = t0 + (i + 1) * interval_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # the sampling interval itself, not a synchronisation
                try:
                    window = cap.next_window()
                except CaptureError as exc:  # it grew past this machine's memory
                    raise CaptureError(
                        f"{exc} (the {written} windows captured are left in {out}, unclosed: "
                        "`migcodec trace info --allow-incomplete` reads them)"
                    ) from None
                if window is None:
                    how = "exited"
                    if isinstance(cap.ended, ProcessReplaced):
                        how = "ran another program (exec)"
                    if not written:  # a trace of no window, complete, passed for a capture
                        raise CaptureError(
                            f"process {pid} {how} before its first window ended, so nothing "
                            f"was captured (an empty trace is left in {out}, unclosed); "
                            "capture a process that runs for longer than the interval"
                        )
                    end_reason = f"process {pid} {how} after {written} windows"
                    break
                writer.set_memory_pages(cap.layout.n_pages)
                writer.write(window)
                written += 1
                true_count = window.n_pages if window.dirty_pages is None else window.dirty_pages
                dirty += true_count
                stored += window.n_pages
                sampled += window.dirty_pages is not None
                bar.update(1)
                bar.set_postfix(dirty=true_count, present=window.meta["present_pages"])
                del window  # free it before the next snapshot: one window alive at a time
            writer.end_reason = end_reason
            writer.meta.update(
                {
                    "pid": pid,
                    "method": cap.method,
                    "method_note": note,
                    "selection": {
                        "include_file": cap.select.include_file,
                        "include_shared": cap.select.include_shared,
                        # a list: JSON reads a tuple back as one
                        "address_range": (
                            None
                            if cap.select.address_range is None
                            else list(cap.select.address_range)
                        ),
                    },
                    "max_pages": max_pages,
                    "sample_seed": seed,
                    "layout": cap.layout.segments(),
                    "layout_columns": ["first virtual page", "pages", "first trace page"],
                    "mappings": {f"{a:x}": path for a, path in cap.mappings_seen.items()},
                }
            )
    finally:
        cap.close()
    return CaptureResult(Path(out), written, cap.method, note, end_reason, dirty, stored, sampled)
