"""Where evaluation windows come from: any iterable of :class:`~migcodec.datasets.Window`.

A trace directory (:func:`read_trace`), a named workload or a comma-separated list of page
generators as phases (:func:`workload_windows`), or any iterable of windows a caller
already has: evaluation code never cares which.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from migcodec.datasets import (
    GENERATORS,
    Window,
    generate_pages,
    get_workload,
    open_windows,
    workload_names,
)
from migcodec.datasets.trace import TraceReader
from migcodec.datasets.trace.format import MANIFEST, MANIFEST_LIMIT, is_trace_file
from migcodec.storage import LocalLocation, Location, location


class WindowSourceError(ValueError):
    """A trace or workload could not be turned into windows."""


def check_windows(windows: Iterable[Window]) -> Iterator[Window]:
    """Yield windows, checking what evaluation relies on (shapes of pages and previous)."""
    for w in windows:
        if w.pages.ndim != 2 or w.pages.dtype != np.uint8:
            raise WindowSourceError(
                f"window {w.index}: pages must be an (n, page_size) uint8 array, "
                f"got {w.pages.dtype} {w.pages.shape}"
            )
        if w.previous is not None and w.previous.shape != w.pages.shape:
            raise WindowSourceError(
                f"window {w.index}: previous {w.previous.shape} does not match pages "
                f"{w.pages.shape}"
            )
        yield w


def read_trace(path: str | Path | Location) -> Iterator[Window]:
    """Windows of a trace directory (a path or an fsspec URL); never a workload's, whatever
    the directory is named (:func:`~migcodec.datasets.open_windows` reads a name that is
    no trace as one)."""
    return iter(TraceReader(path))


def phase_generators(name: str) -> list[str] | None:
    """The page generators a workload ``name`` cycles through as phases (two or more, for a
    comma-separated list), or ``None`` for a preset or a single generator, which
    ``phase_windows`` does not shape."""
    if name in workload_names():
        return None
    phases = _generator_names(name)
    return phases if len(phases) > 1 else None


def _generator_names(name: str) -> list[str]:
    """The page generators a comma-separated workload ``name`` lists, in order."""
    return [p.strip() for p in name.split(",") if p.strip()]


def workload_windows(
    name: str, n_windows: int = 64, pages: int = 1024, seed: int = 0, phase_windows: int = 16
) -> Iterator[Window]:
    """Windows of a named phased workload (``migcodec.datasets`` presets), or of page
    generators as phases.

    A preset's memory grows to ``pages`` where it holds fewer (its windows were cut to its
    size, without a word). ``NAME`` that is no preset is a page generator (``memcached``)
    or a comma-separated list of them (``zero,text,memcached,random``): each phase lasts
    ``phase_windows`` windows of whole-page rewrites, cycling through the list.
    ``previous`` is the window before's contents, as a destination that received every
    window would hold.
    """
    if name in workload_names():
        spec = get_workload(name, n_windows=n_windows, seed=seed, pages_per_window=pages)
        if pages > spec.n_pages:  # a window dirties at most the memory: grown to hold it
            spec = get_workload(
                name, n_windows=n_windows, seed=seed, pages_per_window=pages, n_pages=pages
            )
        yield from open_windows(spec)
        return
    phases = _generator_names(name)
    unknown = [p for p in phases if p not in GENERATORS]
    if not phases or unknown:
        raise WindowSourceError(
            f"unknown workload {name!r}: use page generators from "
            f"{', '.join(sorted(GENERATORS))}, comma-separated for phases"
        )
    indices = np.arange(pages, dtype=np.int64)
    previous = None
    for i in range(n_windows):
        phase = phases[(i // phase_windows) % len(phases)]
        data = generate_pages(phase, pages, seed=seed * 100_003 + i)
        yield Window(i, indices, data, previous, phase)
        previous = data


def trace_identity(path: str | Path | Location) -> str:
    """What a cached table of a trace directory is keyed by: the trace's files (manifest,
    index, chunks), their sizes and change stamps (modification times; an object store's
    own stamp for a URL), and the manifest's own bytes: another trace copied over this one
    with its stamps kept (``cp -p``, ``rsync -t``), whose files may be of the same sizes,
    has another manifest (its creation time, command and totals). A local trace has one
    key whether named by a path or a ``file://`` URL, so either finds its tables. Other
    files in the directory are not the trace: a ``--table`` file kept there changed the
    key when written, and the next run found its own table of another trace."""
    root = location(path)
    local = root.local_path
    parts = [str(local.resolve()) if local is not None else str(root)]
    if local is not None:
        root = LocalLocation(local)
    for name, size, stamp in root.files():
        if is_trace_file(name):
            parts.append(f"{name}:{size}:{stamp}")
        if name == MANIFEST and size <= MANIFEST_LIMIT:  # read when the trace is opened, too
            with contextlib.suppress(OSError):  # opening the trace says what is wrong
                manifest = (root / MANIFEST).read_bytes()
                parts.append(hashlib.blake2b(manifest, digest_size=8).hexdigest())
    # a path's bytes as the file system holds them (a name that is no UTF-8 decodes to
    # surrogates, which the strict encoder refused)
    text = "\n".join(parts).encode("utf-8", "surrogateescape")
    return hashlib.blake2b(text, digest_size=8).hexdigest()
