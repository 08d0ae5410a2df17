"""Guest memory to migrate from or into: anonymous, a file, or a shared-memory region.

A file or a region lets the engine migrate memory that something else holds (a saved
memory image, or the RAM of a process that maps the same region) instead of a buffer it
filled itself. Either way the engine sees an ``(n_pages, page_size)`` uint8 array mapped
over the backing, never a copy, so the guest's writes and the destination's decoded pages
land in the backing itself.

Sizes: without ``size``, an existing file or region is used whole; a new one gets
:data:`DEFAULT_SIZE`. With ``size``, a smaller file grows to it (reading as zeros), a
larger one is used from its start; a region cannot grow, so a smaller one is refused, nor
can a file whose contents are kept (``must_exist``: it would hold zeros it never held). A
file's growth is allocated on its filesystem up front (``posix_fallocate``): a mapping of
a sparse file on a filesystem without room for it kills the process with SIGBUS at the
first page that finds no block, in the middle of a migration; so are a region's pages in
/dev/shm, a file system that is often small (64 MiB in a container by default). Only
regular files are mapped: a FIFO or a device would block or fail in ways that name neither.
``must_exist`` refuses to create a file or region: migrating a memory image "as it is"
makes no sense for one that is not there.

Anonymous memory (and a region, which lives in RAM) is checked against the memory this
machine has available before it is allocated (:func:`check_available`): numpy would
refuse an impossible size with a traceback, and accept a merely too large one, to be
killed later by the kernel while the guest is filled.
"""

from __future__ import annotations

import errno
import gc
import os
import re
import sys
from collections.abc import Callable
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np

from migcodec.codecs.stuck import still_read
from migcodec.files import cannot_create_in
from migcodec.ram import short_of

DEFAULT_SIZE = 256 * 2**20
#: a region's name: POSIX's portable filename characters, at most 250 of them. Python's
#: resource tracker, which every region this process creates or (before 3.13) attaches is
#: registered with, sends names as ``REGISTER:name:type`` lines of ASCII: a name outside
#: ASCII fails inside ``SharedMemory`` after the region was made (left behind, unremoved),
#: and one with ``:`` or a newline breaks the tracker's protocol
SHM_NAME = re.compile(r"[A-Za-z0-9._-]{1,250}")


class GuestMemoryError(ValueError):
    """Guest memory cannot be opened as asked; the message says what to change."""


def check_available(n_bytes: int, what: str, fix: str = "use a smaller --memory") -> None:
    """Refuse ``n_bytes`` of RAM for ``what`` when this machine does not have them free;
    the message ends with ``fix``."""
    from migcodec.units import format_size

    free = short_of(n_bytes)
    if free is not None:
        raise GuestMemoryError(
            f"{what} needs {format_size(n_bytes)} of RAM, but this machine has "
            f"{format_size(free)} available; {fix}"
        )


class GuestMemory:
    """Open guest memory: ``pages`` is valid until :meth:`close` (or the ``with`` ends).

    ``had_contents`` says the backing existed before with something in it, which a caller
    may want to migrate as it is rather than overwrite. ``discard`` removes a backing file
    this process created, for a caller whose work into it failed.
    """

    def __init__(
        self,
        pages: np.ndarray,
        description: str,
        had_contents: bool = False,
        release: Callable[[bool], None] | None = None,
        file: Path | None = None,
        file_bytes: int | None = None,
        final_path: Path | None = None,
    ) -> None:
        self.pages = pages
        self.description = description
        self.had_contents = had_contents
        self._release = release
        # a backing file, and its size before (None: this process made it)
        self._file, self._file_bytes = file, file_bytes
        self._final_path = final_path  # where a staged file goes once whole (commit)
        self._size = pages.nbytes
        self._discarded = False
        self._unmapped = False
        self.closed = False

    def discard(self) -> bool:
        """Remove the backing file if this process created it (a destination that did not
        receive all of its memory: a full-size file of partial contents would pass for a
        migrated image); whether it did. Its pages stay mapped until :meth:`close`."""
        self._discarded = True
        if self._file is None or self._file_bytes is not None:
            return False
        self._file.unlink(missing_ok=True)
        return True

    def commit(self) -> None:
        """Give a file made under a staging name (``open_guest_memory(staged=True)``) its
        own name, once what it holds is whole; nothing for any other memory."""
        if self._final_path is not None and self._file is not None:
            os.replace(self._file, self._final_path)
            self._file, self._final_path = self._final_path, None

    def empty_again(self) -> bool:
        """Once closed, after :meth:`discard`, cut an existing file that was empty back to
        empty (a ``touch``-ed file received into was left full-size with part of the
        stream: a partial image looking like a received one); whether it did. Not while a
        codec call left running may still read its pages (truncated under a mapping, the
        next read is a SIGBUS)."""
        if not (self._discarded and self.closed and self._unmapped) or self._file_bytes != 0:
            return False
        os.truncate(self._file, 0)
        return True

    @property
    def size(self) -> int:
        """The memory's bytes (kept once closed, when ``pages`` is gone)."""
        return self._size

    def trim(self) -> bool:
        """Cut a backing file longer than the memory to the memory's size, once closed (a
        destination that received all of its memory into an existing, larger file: its
        tail held the file's old bytes, and the file passed for the source's image while
        it was not); whether it did."""
        if not (self.closed and self._file_bytes and self._file_bytes > self._size):
            return False
        os.truncate(self._file, self._size)
        return True

    def close(self) -> None:
        """Write a file's pages back, unmap, and unlink a region only if we created it.

        Pages that a codec call left running may still read
        (:func:`~migcodec.codecs.stuck.still_read`) are not unmapped: the codec would crash
        the process when it next read them. Their mapping is left to the arrays of the
        call that view it, and goes with the last of them (a region's name is removed all
        the same). A file's and anonymous memory's already do: nothing unmaps them but
        that; a region's is unmapped by its ``close``, whatever still views it."""
        if self.closed:
            return
        self.closed = True
        if isinstance(self.pages, np.memmap):
            self.pages.flush()
        unmap = self._unmapped = not still_read(self.pages)
        del self.pages  # a mapping can only be closed once no array views it
        if self._release is not None:
            self._release(unmap)

    def __enter__(self) -> GuestMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_guest_memory(
    size: int | None = None,
    page_size: int = 4096,
    *,
    path: str | os.PathLike | None = None,
    shm_name: str | None = None,
    must_exist: bool = False,
    staged: bool = False,
    smaller: str = "use a smaller --memory",
) -> GuestMemory:
    """Guest memory of ``size`` bytes (whole pages), in a file, a region, or anonymous.

    ``must_exist``: a missing (or empty) file or region is an error instead of being
    created. ``staged``: a missing file is made under a name that says it is partial,
    and given ``path`` by :meth:`GuestMemory.commit` (a destination's image, once it is
    whole). Anonymous memory and a new region are refused if this machine does not have
    the RAM available. ``smaller`` is what a refusal for room says to do about the size
    (a destination's is the source's to change: it has no ``--memory``)."""
    if path is not None and shm_name is not None:
        raise GuestMemoryError("guest memory comes from a file or a shared-memory region, not both")
    if path is not None:
        return _open_file(Path(path), size, page_size, must_exist, staged, smaller)
    if shm_name is not None:
        return _open_shm(shm_name, size, page_size, must_exist, smaller)
    n_pages = _n_pages(size, None, page_size, "")
    check_available(n_pages * page_size, "guest memory", smaller)
    try:
        pages = np.zeros((n_pages, page_size), np.uint8)
    except MemoryError as exc:
        raise GuestMemoryError(
            f"cannot allocate {n_pages * page_size} bytes of guest memory ({exc}); use a "
            "smaller --memory"
        ) from exc
    return GuestMemory(pages, "anonymous memory")


def _n_pages(size: int | None, existing: int | None, page_size: int, what: str) -> int:
    """Pages to map: ``size`` in whole pages, else all of an existing backing."""
    if existing is not None and existing % page_size:
        whole = existing // page_size * page_size
        fix = f"truncate it to {whole} bytes or " if whole else ""
        raise GuestMemoryError(
            f"{what} holds {existing} bytes, not a whole number of {page_size}-byte pages: "
            f"guest memory is pages; {fix}extend it to {whole + page_size} (truncate -s), or "
            "give an image of whole pages"
        )
    if size is None:
        size = existing or DEFAULT_SIZE
    if size < page_size:
        raise GuestMemoryError(f"guest memory of {size} bytes is less than one page")
    return size // page_size


def shm_file(name: str) -> Path:
    """The file of /dev/shm that shared-memory region ``name`` is (on Linux)."""
    return Path("/dev/shm", name)


def check_backing(path: str | os.PathLike | None = None, shm_name: str | None = None) -> None:
    """Refuse, before anything waits on it, a file that is not one (a directory, FIFO or
    device) or a region name that is no name: a destination checks its backing before it
    listens, not once a source has connected."""
    if path is not None and not str(path).strip():  # Path("") is ".", a directory
        raise GuestMemoryError(
            f"--memory-file {str(path)!r} names no file: guest memory is mapped from a file; "
            "give the path of a file, or leave --memory-file out for anonymous memory"
        )
    if path is not None and Path(path).exists() and not Path(path).is_file():
        raise GuestMemoryError(
            f"--memory-file {path} is not a regular file (a directory, FIFO or device): guest "
            "memory is mapped from a file; give the path of a file"
        )
    if path is not None and Path(path).is_file() and os.statvfs(path).f_blocks == 0:
        raise _no_storage(f"--memory-file {path}")
    if path is not None and not Path(path).exists():
        _check_creatable(Path(path))
    if shm_name is not None and (not SHM_NAME.fullmatch(shm_name) or shm_name.strip(".") == ""):
        raise GuestMemoryError(
            f"--shm {shm_name!r} is not a shared-memory region's name: give at most 250 "
            "letters, digits, '.', '_' or '-' (not only dots), e.g. guest0"
        )
    # a region is a file of /dev/shm: anything else there was "[Errno 22] Invalid argument"
    # from mmap, and only once a destination's source had connected
    region = None if shm_name is None else shm_file(shm_name)
    if region is not None and region.exists() and not region.is_file():
        raise GuestMemoryError(
            f"--shm {shm_name}: {region} is not a shared-memory region (a directory, FIFO or "
            "device); name another region"
        )


def _no_storage(what: str) -> GuestMemoryError:
    """The error for a file on a filesystem of no blocks: a file of /proc or /sys, where
    "no room" sent the user to free space that is not there."""
    return GuestMemoryError(
        f"{what} is on a filesystem that holds no storage (/proc, /sys or another "
        "pseudo-filesystem), not a file guest memory can be mapped from; give a file on a "
        "disk or in /dev/shm"
    )


def _check_creatable(path: Path) -> None:
    """Refuse a file to create that could not be: in a directory that is missing (or is a
    file), where no file can be made (``/proc``, a read-only mount: root passes the
    permission bits: ``migcodec.files.cannot_create_in``), or behind a loop of symbolic
    links (a link to a file yet to be made is followed: the file is made where it points).
    A destination checks this before it waits for a source, not once one connected."""
    if os.path.islink(path):
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise GuestMemoryError(
                    f"--memory-file {path} is a loop of symbolic links; give the path of a file"
                ) from None
    parent = Path(os.path.realpath(path)).parent
    if not parent.is_dir():
        state = "is not a directory" if parent.exists() else "does not exist"
        raise GuestMemoryError(
            f"--memory-file {path}: {parent} {state}; give a path in an existing directory"
        )
    why = cannot_create_in(parent)
    if why is not None:
        raise GuestMemoryError(
            f"--memory-file {path}: no file can be made in {parent} ({why}); give a path in "
            "a writable directory"
        )


def _open_file(
    path: Path,
    size: int | None,
    page_size: int,
    must_exist: bool,
    staged: bool = False,
    smaller: str = "use a smaller --memory",
) -> GuestMemory:
    what = f"--memory-file {path}"
    created = False
    check_backing(path=path)
    final = None
    if staged and not path.exists():
        # made under a name that says it is partial, and given ``path`` by commit() only
        # once whole: a process killed midway (SIGKILL, the out-of-memory killer) left a
        # full-size file of part of the memory at ``path``, like a received image
        final, path = path, path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        existing = path.stat().st_size if path.exists() else None
        if must_exist and not existing:
            state = "is empty" if existing == 0 else "does not exist"
            raise GuestMemoryError(
                f"{what} {state}: --keep-contents migrates what a file holds; give an "
                "existing memory image, or drop --keep-contents to fill a new one"
            )
        n_pages = _n_pages(size, existing, page_size, what)
        if must_exist and n_pages * page_size > existing:
            # grown, the image would hold zeros it never held, migrated as its contents
            raise GuestMemoryError(
                f"{what} holds {existing} bytes, and --keep-contents migrates what it holds: "
                f"--memory {n_pages * page_size} would grow it; leave --memory out to migrate "
                "all of it, or drop --keep-contents to fill a new image"
            )
        # created if missing; not O_APPEND, which glibc's emulation of fallocate (on a
        # filesystem without it) refuses
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        # only once opened: a file that could not be made is not removed, which would fail
        # in its place (a path under a file) and hide why
        created = existing is None
        try:  # every mapped byte, holes of an existing file too (a no-op where allocated)
            _allocate(fd, existing or 0, n_pages * page_size, what, smaller)
        finally:
            os.close(fd)
        pages = np.memmap(path, np.uint8, "r+", shape=(n_pages, page_size))
    except BaseException as exc:
        if created:  # not left behind half made: it held nothing before
            path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise GuestMemoryError(f"cannot map {what}: {exc}") from exc
        raise
    return GuestMemory(
        pages,
        f"file {final or path}",
        bool(existing),
        file=path,
        file_bytes=existing,
        final_path=final,
    )


def _fallocate(fd: int, end: int, what: str, room: str) -> bool:
    """Give ``fd``'s first ``end`` bytes their blocks now (a no-op where they have them):
    ``False`` where its filesystem cannot allocate ahead; refused, in one line naming
    ``room`` (where the bytes would go, and what else to do), where it has no room.

    Room is checked first: ``posix_fallocate`` that runs out keeps the blocks it took, so
    a sparse image larger than the free space (an existing file or region, not removed on
    failure) left its filesystem full, for every other program on it, until deleted."""
    stats = os.fstatvfs(fd)
    if stats.f_blocks == 0:
        raise _no_storage(what)
    free = stats.f_bavail * stats.f_frsize
    held = os.fstat(fd).st_blocks * 512  # blocks the file has: taking them is a no-op
    if end - held > free:
        raise GuestMemoryError(f"{what}: {room.format(end=end)}")
    try:
        os.posix_fallocate(fd, 0, end)
        return True
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise GuestMemoryError(f"{what}: {room.format(end=end)}") from exc
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.EBADF):
            raise GuestMemoryError(f"cannot allocate {what}: {exc}") from exc
    return False


def _allocate(fd: int, existing: int, end: int, what: str, smaller: str) -> None:
    """Give the file blocks for its first ``end`` bytes (reading as zeros where it had
    none; ``existing``: its size before): refused here, in one line, when its filesystem
    has no room, not by SIGBUS when a page in a hole is first written."""
    room = (
        "its filesystem has no room for the {end} bytes of guest memory; free space there, "
        f"{smaller}, or put the file elsewhere"
    )
    if _fallocate(fd, end, what, room):
        return
    # a filesystem that cannot allocate ahead: grow the file sparse if the room is there now
    stats = os.fstatvfs(fd)
    free = stats.f_bavail * stats.f_frsize
    if end - existing > free:
        raise GuestMemoryError(
            f"{what}: its filesystem has {free} bytes free, and the file needs "
            f"{end - existing} more; free space there, {smaller}, or put the file elsewhere"
        )
    if end > existing:
        os.ftruncate(fd, end)


def _attach(name: str) -> SharedMemory:
    """Attach to an existing region without making this process its owner."""
    if sys.version_info >= (3, 13):
        return SharedMemory(name, track=False)
    shm = SharedMemory(name)
    # before 3.13, attaching registers the region with the resource tracker, which unlinks
    # it when this process exits (python/cpython#82300): the region is not ours to remove
    resource_tracker.unregister(shm._name, "shared_memory")
    return shm


def _reserve_region(shm: SharedMemory, end: int, what: str) -> None:
    """Give the region's first ``end`` bytes their pages in /dev/shm now: a region is a
    file there, made sparse, and a page written in a hole when /dev/shm is full kills the
    process with SIGBUS (one received from the network, ``EFAULT``), so a region without
    room is refused here, as a file is."""
    room = (
        "/dev/shm has no room for the {end} bytes of guest memory; free space there, use a "
        "smaller --memory, or use a --memory-file"
    )
    _fallocate(shm._fd, end, what, room)


def _leave_mapped(shm: SharedMemory) -> None:
    """Close ``shm``'s descriptor, but leave its mapping to the arrays that view it: it is
    unmapped when the last of them goes, not before. ``SharedMemory`` has no call for
    this: its ``close``, which its finalizer calls too, unmaps what arrays still view."""
    shm._buf = None  # the memoryview and mmap the arrays' base holds on to
    shm._mmap = None
    shm.close()


def _open_shm(
    name: str, size: int | None, page_size: int, must_exist: bool, smaller: str
) -> GuestMemory:
    what = f"--shm {name}"
    check_backing(shm_name=name)
    try:
        shm, created = _attach(name), False
    except FileNotFoundError:
        if must_exist:
            raise GuestMemoryError(
                f"{what}: no such shared-memory region: --keep-contents migrates what a "
                "region holds; start the program that creates it first, or drop "
                "--keep-contents to fill a new one"
            ) from None
        n_pages = _n_pages(size, None, page_size, what)
        check_available(n_pages * page_size, what, smaller)
        try:
            shm, created = SharedMemory(name, create=True, size=n_pages * page_size), True
        except OSError as exc:
            raise GuestMemoryError(f"cannot create {what}: {exc}") from exc
    except OSError as exc:
        raise GuestMemoryError(f"cannot attach {what}: {exc}") from exc
    except ValueError:  # mmap's "cannot mmap an empty file"
        raise GuestMemoryError(
            f"{what} holds 0 bytes, and a shared-memory region cannot grow; remove it "
            f"(rm /dev/shm/{name}) or name another region"
        ) from None

    def release(unmap: bool = True) -> None:
        try:
            if not unmap:
                _leave_mapped(shm)
                return
            try:
                shm.close()
            except BufferError:  # a view in a reference cycle: collect it, then unmap
                gc.collect()
                shm.close()
        finally:
            if created:
                shm.unlink()

    try:
        if not created:
            n_pages = _n_pages(size, shm.size, page_size, what)
            if n_pages * page_size > shm.size:
                raise GuestMemoryError(
                    f"{what} holds {shm.size} bytes; the guest needs {n_pages * page_size} "
                    f"(a shared-memory region cannot grow): migrate a guest of {shm.size} "
                    f"bytes or less (--memory, on the source), or remove the region (rm "
                    f"/dev/shm/{name}) to have one made"
                )
        _reserve_region(shm, n_pages * page_size, what)
    except BaseException:
        release()
        raise
    pages = np.ndarray((n_pages, page_size), np.uint8, buffer=shm.buf)
    return GuestMemory(pages, f"shared memory {name}", not created, release)
