"""TraceWriter: append windows to a trace directory, one record at a time."""

from __future__ import annotations

import contextlib
import functools
import json
import numbers
import os
import secrets
import shlex
import shutil
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from migcodec.codecs import CodecStuck, get_codec
from migcodec.codecs.bounded import CodecThread, run_bounded
from migcodec.datasets.window import Window
from migcodec.files import json_problem
from migcodec.hashing import seal
from migcodec.interrupts import Terminated, interrupts_held
from migcodec.staging import Staged, exchange, hidden_beside, through_link

from .format import (
    CHUNK_GLOB,
    CHUNK_PATTERN,
    FORMAT,
    INDEX,
    INDEX_DTYPE,
    MANIFEST,
    MANIFEST_LIMIT,
    VERSION,
    TraceExists,
    TraceTooLarge,
    TraceWriteFailed,
    TraceWriteInterrupted,
    UnsuitableCodec,
    belongs_to_trace,
    record_seed,
)
from .record import encode_record
from .schema import MANIFEST_SCHEMA, check

DEFAULT_CHUNK_BYTES = 256 << 20
#: what to do about a storing codec whose call never returns
_STORE_INSTEAD = "store the trace with another --codec (zstd, the default, or lz4)"


def _check_output(path: Path, overwrite: bool) -> None:
    """Refuse an output path that cannot take a new trace: a file, a directory holding a
    trace (unless ``overwrite``, and then only the trace: :func:`belongs_to_trace`), or a
    directory holding anything else (whatever ``overwrite`` says: the trace's files would
    be mixed with what is there)."""
    if path.exists() and not path.is_dir():
        raise TraceExists(
            f"{path} exists and is not a directory; name a new or empty directory for the trace",
            path,
        )
    if (path / MANIFEST).exists():
        if not overwrite:
            raise TraceExists(
                f"{path} already holds a trace; choose another directory or pass "
                "overwrite=True to replace it",
                path,
                replaceable=True,
            )
        with os.scandir(path) as entries:
            own = next((e.name for e in entries if not belongs_to_trace(e.name)), None)
        if own is not None:  # replacing the trace's directory took them with it
            raise TraceExists(
                f"{path} holds a trace and other files (e.g. {own!r}), which replacing the "
                "trace would delete; move them out of it, or choose another directory",
                path,
            )
        return
    if path.is_dir():
        with os.scandir(path) as entries:
            held = next(entries, None)
        if held is not None:
            raise TraceExists(
                f"{path} is a directory that holds other files (e.g. {held.name!r}) and no "
                "trace; name a new or empty directory for the trace",
                path,
            )


class TraceWriter:
    """Writes windows to ``path`` as they come; memory use is one window, whatever the length.

    The manifest is written at open (``complete: false``) and rewritten by :meth:`close`
    with the window count, phases and totals, so a trace whose writer died is recognisable
    and its windows up to the last index entry stay readable. Use it as a context manager;
    ``end_reason`` (e.g. "process exited") is recorded in the manifest. An exception out of
    the ``with`` block ends the trace unclosed (``complete: false``, with the error as its
    ``end_reason``): it holds only part of what was asked for.

    A write the operating system refuses (a full disk, an I/O error) raises
    :class:`TraceWriteFailed` naming the path and the error; the partial trace is then left
    unclosed (not removed: its manifest says ``complete: false`` and the windows indexed
    before the failure stay readable with ``allow_incomplete``), and closing the writer
    no longer writes anything.

    ``staged``: the trace is written in a hidden directory beside ``path`` and renamed to
    ``path`` only when it closes whole, replacing a trace there (``overwrite``) only then;
    ending any other way removes it, so ``path`` holds what it held. For traces made again
    at will (a synthetic workload, an imported stream), where a partial one is worth
    nothing: ``trace import-qemu --force`` whose sync points belonged to another stream
    had already deleted the trace it was to replace, and left two windows unclosed.

    Given ``expected_windows``, how many windows the trace is to hold, the writer checks
    after 8 windows, and each time their number doubles, that the rest will fit on the
    filesystem at the rate the first took, and raises :class:`TraceTooLarge` when they
    will not: a trace of a mistyped length ends in seconds, not hours later on a full disk.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        memory_pages: int,
        page_size: int = 4096,
        window_s: float | None = None,
        source: str = "",
        command: str | None = None,
        codec: str = "zstd",
        codec_config: dict[str, Any] | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        meta: dict[str, Any] | None = None,
        overwrite: bool = False,
        workers: int | None = None,
        expected_windows: int | None = None,
        staged: bool = False,
    ) -> None:
        # staged beside a symbolic link, the trace took the link's place and left its
        # target as it was
        self.path = through_link(path) if staged else Path(path)
        #: where the files are written: ``path``, or while staged the directory beside it
        self._dir = self.path
        self._overwrite = overwrite
        self._staging: Staged | None = None  # while staged: the directory written, held
        self._made = False  # whether this writer made the directory at ``path``
        self.expected_windows = expected_windows
        self._room_check_at = 8  # windows written when the room is next checked
        # the codec is built, and called, on threads of the writer's, waited for while its
        # calls return: a plugin's constructor or encode that never returns is named
        # (CodecStuck) and left there, and the trace is left unclosed, not waited for
        built = functools.partial(get_codec, codec, **(codec_config or {}))
        self.codec = run_bounded(built, instead=_STORE_INSTEAD)
        self._encoder = CodecThread(_STORE_INSTEAD, "migcodec-trace-encode")  # on first write
        self._stuck = False
        if self.codec.reads_destination:
            raise UnsuitableCodec(
                f"codec {self.codec.name!r} encodes pages against what a migration's "
                "destination already holds, and a trace has no destination; store the trace "
                "with a compressing codec (zstd, the default, or lz4)"
            )
        self.codec.check_page_size(page_size)
        if not os.fspath(path):
            raise ValueError("the trace directory is an empty path; name a directory")
        try:
            _check_output(self.path, overwrite)
        except PermissionError as exc:  # pathlib's checks raise it where it may not search
            raise self._cannot_create(exc) from exc
        self._pool: ThreadPoolExecutor | None = None
        self._index = None
        self._chunk = None
        self.page_size = page_size
        self.chunk_bytes = chunk_bytes
        self.end_reason = "closed"
        self._manifest: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "page_size": page_size,
            "memory_pages": int(memory_pages),
            "window_s": window_s,
            "source": source,
            "command": command if command is not None else shlex.join(sys.argv),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "codec": self.codec.get_config(),
            "chunk_bytes": chunk_bytes,
            "complete": False,
            "windows": 0,
            "phases": [],
            "totals": {"pages": 0, "raw_bytes": 0, "stored_bytes": 0, "previous_windows": 0},
            "meta": dict(meta or {}),
            # this trace's own: its records' header checksums are seeded with it
            "trace_id": secrets.randbits(64),
        }
        self._seed = record_seed(self._manifest)
        _check_manifest(self.path, self._manifest)
        self._chunk_no = -1
        self._next_index = 0
        try:
            # made first, staged or not, for the errors a directory there cannot be made
            # with; staged, it stays empty (and goes, if made here, when the trace does)
            self._made = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
            if staged:
                self._staging = Staged(self.path, "writing")
                self._dir = self._staging.path
            if overwrite and not staged:
                for old in self.path.glob(CHUNK_GLOB):
                    old.unlink()
            self._write_manifest()
            self._index = open(self._dir / INDEX, "wb")  # noqa: SIM115 - lives until close()
            self._open_chunk()
        except OSError as exc:
            self._abandon()
            if self._staged():
                self._unstage()
            raise self._cannot_create(exc) from exc
        workers = min(4, os.cpu_count() or 1) if workers is None else workers
        self._pool = ThreadPoolExecutor(workers, "trace-encode") if workers > 1 else None

    # -- public -------------------------------------------------------------------------
    @property
    def stored_bytes(self) -> int:
        """Bytes of pages stored so far (encoded): what the windows written take on disk,
        to within the chunks' framing and the index."""
        return self._manifest["totals"]["stored_bytes"]

    @property
    def meta(self) -> dict[str, Any]:
        """Free-form manifest metadata, saved on close (capture stores its method here)."""
        return self._manifest["meta"]

    def set_memory_pages(self, memory_pages: int) -> None:
        """Grow the memory size, e.g. when a captured process maps more memory. The
        manifest is written again at once: a reader checks every window's pages against
        its size, and a writer killed after a window past the size written at open left a
        trace whose windows all read as damage."""
        grown = int(memory_pages)
        if grown <= self._manifest["memory_pages"]:
            return
        self._manifest["memory_pages"] = grown
        if self._chunk is None:  # closed or abandoned: nothing more is written
            return
        try:
            self._write_manifest()
        except OSError as exc:
            raise self._failed(exc, "the manifest") from exc

    def write(self, window: Window) -> None:
        """Append ``window``; its ``index`` must be the next one (0, 1, 2, ...)."""
        if isinstance(window.index, bool) or not isinstance(window.index, numbers.Integral):
            # a float was packed into the record's header as a struct error, naming neither
            raise TypeError(
                f"a window's index must be a whole number (0, 1, 2, ...), got "
                f"{window.index!r} ({type(window.index).__name__}); number windows with ints"
            )
        indices = window.page_indices
        if not isinstance(indices, np.ndarray) or indices.ndim != 1:
            # the record's checks read .size and [-1]: an AttributeError or IndexError
            raise TypeError(
                f"window {window.index}'s page indices must be a 1-D numpy array, got "
                f"{type(indices).__name__}"
                + (f" of shape {indices.shape}" if isinstance(indices, np.ndarray) else "")
            )
        if window.index != self._next_index:
            raise ValueError(
                f"windows must be written in order: expected window {self._next_index}, "
                f"got {window.index}"
            )
        if window.page_indices.size and window.page_indices[-1] >= self._manifest["memory_pages"]:
            raise ValueError(
                f"window {window.index} names page {int(window.page_indices[-1])}, beyond "
                f"the trace's {self._manifest['memory_pages']} pages; call set_memory_pages"
            )
        dirty = window.dirty_pages
        if isinstance(dirty, int) and dirty > self._manifest["memory_pages"]:
            raise ValueError(
                f"window {window.index}: dirty_pages {dirty} is more than the trace's "
                f"{self._manifest['memory_pages']} pages, and a window dirties each page at "
                "most once; call set_memory_pages"
            )
        if self._chunk is None:
            raise ValueError(f"the writer of trace {self.path} is closed")
        try:
            parts = self._encoder.run(
                encode_record, window, self.codec, self.page_size, self._pool, self._seed
            )
        except CodecStuck:
            self._stuck = True  # its pool's threads may be inside the call too
            raise
        try:
            if self._chunk.tell() >= self.chunk_bytes:
                self._open_chunk()
            offset = self._chunk.tell()
            for part in parts:
                self._chunk.write(part)
            length = self._chunk.tell() - offset
            entry = np.array(
                [(self._chunk_no, 0, offset, length, window.n_pages)], dtype=INDEX_DTYPE
            )
            self._chunk.flush()
            self._index.write(entry.tobytes())
            self._index.flush()
        except OSError as exc:
            raise self._failed(exc, f"window {window.index}") from exc
        self._account(window, length)
        self._next_index += 1
        if self._next_index == self._room_check_at:
            self._room_check_at *= 2
            self._check_room()

    def write_all(self, windows: Iterable[Window]) -> int:
        count = 0
        for window in windows:
            self.write(window)
            count += 1
        return count

    def close(self) -> None:
        """End the trace: every window written is indexed and the manifest says the trace
        is complete, with ``end_reason``. ``meta`` and ``end_reason`` set since the trace was
        opened are checked as the manifest was then: a part its reader would refuse or read
        back different is a ``ValueError``, and the writer stays open to be closed again."""
        if self._chunk is not None:
            closing = {**self._manifest, "complete": True, "end_reason": self.end_reason}
            _check_manifest(self.path, closing)
        self._end(complete=True)

    def _end(self, complete: bool) -> None:
        """Close the files and write the last manifest, whatever signals arrive meanwhile:
        a second Ctrl-C or SIGTERM (``timeout`` sends its signal to the command and again
        to its process group) interrupted the pool's shutdown, and the trace was left with
        the manifest written at open, saying neither how many windows it holds nor why
        it ended. The signal is delivered once the manifest is written."""
        if self._chunk is None:
            return
        try:
            with interrupts_held():
                self._chunk.close()
                self._index.close()
                self._chunk = None
                self._stop_encoding()
                if self._staged() and not complete:
                    self._unstage()  # nothing of it is kept
                    return
                self._manifest["complete"] = complete
                self._manifest["end_reason"] = self.end_reason
                self._write_manifest()
        except OSError as exc:
            raise self._failed(exc, "the closing manifest") from exc
        if self._staged():
            with interrupts_held():
                self._put_in_place()

    def _staged(self) -> bool:
        return self._dir != self.path

    def _unstage(self) -> None:
        """Remove the staged trace (``path`` is as it was)."""
        if self._staging is not None:
            self._staging.remove()
        if self._made:
            with contextlib.suppress(OSError):
                self.path.rmdir()  # empty: made to stage beside

    def _put_in_place(self) -> None:
        """Put the staged trace, closed whole, at ``path``, once ``path`` is checked again:
        it must still be what the writer was opened over (:func:`_check_output`), so that
        files put there meanwhile, or another writer's trace where this one was not told
        to replace one, are not deleted with it (they were). An empty directory there is
        replaced in one rename. A trace there is swapped with the staged one in one step
        (:func:`~migcodec.staging.exchange`) and then removed from the hidden name, where
        a writer killed before the removal leaves it for the next writer's sweep; where
        the system cannot swap, it is moved aside first and removed after (a writer killed
        between those two renames leaves ``path`` without a trace, and the old one
        hidden). Any failure leaves ``path`` as it was and removes the staged trace."""
        path = self.path
        swapped = None  # where the trace replaced is, once swapped out of the way
        try:
            _check_output(path, self._overwrite)
            if not (path / MANIFEST).exists():
                os.rename(self._dir, path)  # nothing there, or an empty directory
            elif exchange(self._dir, path):
                swapped = self._dir
            else:
                self._put_aside_and_in_place()
        except (OSError, TraceExists) as exc:
            self._unstage()
            why = exc if isinstance(exc, TraceExists) else _os_error(exc, path)
            raise TraceWriteInterrupted(
                f"cannot put the trace written in place at {path}: {why}; {path} is as it "
                "was, and the trace written was removed: write it again"
            ) from exc
        self._dir = path
        self._staging.release()
        if swapped is not None:
            shutil.rmtree(swapped, ignore_errors=True)

    def _put_aside_and_in_place(self) -> None:
        """:meth:`_put_in_place` in two renames, where the system cannot swap."""
        aside = hidden_beside(self.path, "replaced")
        os.rename(self.path, aside)
        try:
            os.rename(self._dir, self.path)
        except OSError:
            os.rename(aside, self.path)
            raise
        shutil.rmtree(aside, ignore_errors=True)

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """A ``with`` block left by an exception (an interrupt, a source that failed mid
        way) leaves the trace unclosed: the windows written stay indexed and readable with
        ``allow_incomplete``, and the manifest says why it ended, but a reader that expects
        the whole trace the writer was asked for is refused it (a trace marked complete
        would pass for all of it)."""
        if exc_type is None:
            self.close()
            return
        if self.end_reason == "closed":
            if issubclass(exc_type, Terminated):
                self.end_reason = "terminated (SIGTERM)"
            elif issubclass(exc_type, KeyboardInterrupt):
                self.end_reason = "interrupted (Ctrl-C)"
            else:
                self.end_reason = f"error: {exc_type.__name__}: {exc}"
        self._end(complete=False)

    # -- internals ------------------------------------------------------------------------
    def _check_room(self) -> None:
        """Refuse the rest of the trace if, at the rate the windows written took, it will
        not fit on the filesystem (see the class docstring)."""
        from migcodec.units import format_size

        total, written = self.expected_windows, self._next_index
        if total is None or written >= total:
            return
        stored = self.stored_bytes
        need = stored / written * (total - written)
        free = shutil.disk_usage(self._dir).free
        if need > free:
            raise TraceTooLarge(
                f"{total} windows would take about {format_size(stored + need)} (the first "
                f"{written} took {format_size(stored)}), and the filesystem holding {self.path} "
                f"has {format_size(free)} free: ask for fewer windows or write the trace "
                f"elsewhere ({self._what_is_left(f'the {written} windows written are')})"
            )

    def _what_is_left(self, written: str) -> str:
        """What a writer that ends now leaves, for a message: ``written`` (e.g. "the 8
        windows written are") left there unclosed, or, staged, nothing."""
        if self._staged():
            return f"nothing of it is kept, and {self.path} holds what it held"
        return f"{written} left there, unclosed"

    def _cannot_create(self, exc: OSError) -> TraceWriteFailed:
        return TraceWriteFailed(
            f"cannot create trace {self.path}: {_os_error(exc, self.path)}; choose another "
            "directory"
        )

    def _abandon(self) -> None:
        """Close every file without writing more (their failures are the one reported)."""
        for f in (self._chunk, self._index):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        self._chunk = self._index = None
        self._stop_encoding()

    def _stop_encoding(self) -> None:
        """End the encoding threads: once idle, or at once where a codec call in them never
        returned (waited for, they would hold the trace's end forever)."""
        self._encoder.close()
        if self._pool is not None:
            self._pool.shutdown(wait=not self._stuck, cancel_futures=True)
            self._pool = None

    def _failed(self, exc: OSError, what: str) -> TraceWriteInterrupted:
        file = self._dir / (INDEX if self._chunk is None else Path(self._chunk.name).name)
        self._abandon()
        left = self._what_is_left(
            "the partial trace is (the windows written before read as an incomplete trace)"
        )
        staged = self._staged()
        if staged:
            self._unstage()
        reason = _os_error(exc, self.path, False) if staged else _os_error(exc, file)
        return TraceWriteInterrupted(
            f"cannot write {what} of trace {self.path}: {reason}; {left}: free space or "
            "choose another directory, then write it again"
        )

    def _open_chunk(self) -> None:
        if self._chunk is not None:
            self._chunk.close()
        self._chunk_no += 1
        self._chunk = open(self._dir / CHUNK_PATTERN.format(self._chunk_no), "wb")  # noqa: SIM115

    def _account(self, window: Window, stored: int) -> None:
        m = self._manifest
        m["windows"] = self._next_index + 1
        totals = m["totals"]
        totals["pages"] += window.n_pages
        totals["raw_bytes"] += window.n_pages * self.page_size
        totals["stored_bytes"] += stored
        totals["previous_windows"] += window.previous is not None
        phases = m["phases"]
        if not phases or phases[-1]["name"] != window.phase:
            # the writer's own count, a Python int: a numpy integer the caller numbered its
            # windows with was refused by the manifest at close, and the trace was lost
            phases.append({"name": window.phase, "first": self._next_index, "windows": 0})
        phases[-1]["windows"] += 1

    def _write_manifest(self) -> None:
        tmp = self._dir / (MANIFEST + ".tmp")
        text = json.dumps(seal(self._manifest), indent=2, allow_nan=False)
        problem = _manifest_size_problem(text, 0)  # meta set since open (see _check_manifest)
        if problem is not None:
            raise ValueError(f"cannot write trace {self.path}: {problem}")
        try:
            tmp.write_text(text + "\n")
            os.replace(tmp, self._dir / MANIFEST)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)  # the manifest before stays whole
            raise


def _check_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Refuse, before anything is created, a manifest its reader would refuse as damage (a
    source that is no string, a negative window length: :data:`~.schema.MANIFEST_SCHEMA`)
    or read back different (JSON makes an integer key of ``meta`` a string, a tuple a
    list): a trace is written to be read, and its windows would be lost with it."""
    problem = check(manifest, MANIFEST_SCHEMA) or json_problem(manifest, "the manifest")
    if problem is None:
        try:
            problem = _manifest_size_problem(json.dumps(manifest, indent=2, allow_nan=False))
        except ValueError as exc:  # NaN or infinity, which JSON has no number for
            problem = f"it cannot be stored as JSON ({exc})"
    if problem is not None:
        raise ValueError(f"cannot write trace {path}: {problem}")


#: room kept in the manifest for what the writer adds as it runs (totals, the seal)
_MANIFEST_ROOM = 64 << 10


def _manifest_size_problem(text: str, room: int = _MANIFEST_ROOM) -> str | None:
    """Why a manifest of ``text`` (with ``room`` bytes to grow) cannot be written: its
    reader refuses one past :data:`MANIFEST_LIMIT` as damage, and a QEMU stream that
    announced 70,000 RAM blocks was imported into a trace no one could open."""
    size = len(text.encode()) + room
    if size <= MANIFEST_LIMIT:
        return None
    return (
        f"its manifest.json would be {size} bytes, more than a trace's manifest can be "
        f"({MANIFEST_LIMIT}); keep its metadata smaller"
    )


def _os_error(exc: OSError, path: Path, named: bool = True) -> str:
    """``No space left on device (errno 28, chunk-000000.mct)``: an OS error in one line,
    at the file it names (``named``; a staged trace's files are no one's to look for) or
    else at ``path``."""
    where = exc.filename if named and exc.filename is not None else path
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason} ({where})" if exc.errno is None else f"{reason} (errno {exc.errno}, {where})"
