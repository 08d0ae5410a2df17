"""Writing beside a path, and renaming into place once whole.

A trace or a picture is written under a hidden name beside its path (in its directory, so
that the rename moves it without copying) and takes the path's name only once whole, so
that the path never holds a part of one. A writer stopped by an exception removes what it
wrote; one killed outright (SIGKILL, the kernel's out-of-memory killer) cannot, and a
killed ``trace synth`` left gigabytes under a name no listing shows. So a writer holds an
exclusive ``flock`` on what it stages for as long as it lives (the kernel drops it when
the process dies, however it dies), and the next writer to stage beside the same path
removes what nobody holds.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import secrets
import shutil
import string
from pathlib import Path

#: the random part of a hidden name: eight hex digits
_TOKEN_DIGITS = 8


def hidden_beside(path: str | os.PathLike, what: str) -> Path:
    """A hidden name beside ``path``, in its directory, unique to this call:
    ``.NAME.WHAT-XXXXXXXX``."""
    full = Path(path).absolute()
    return full.with_name(f".{full.name}.{what}-{secrets.token_hex(_TOKEN_DIGITS // 2)}")


def through_link(path: str | os.PathLike) -> Path:
    """Where a file written at ``path`` goes: the file a symbolic link there points to,
    replaced, not the link by a file of its own (as every file migcodec writes is)."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _is_hidden_of(name: str, prefix: str) -> bool:
    token = name[len(prefix) :]
    return (
        name.startswith(prefix)
        and len(token) == _TOKEN_DIGITS
        and all(c in string.hexdigits for c in token)
    )


def remove_leftovers(path: str | os.PathLike, what: str) -> list[Path]:
    """Remove the ``.NAME.WHAT-XXXXXXXX`` entries beside ``path`` that no living writer
    holds (:class:`Staged`), and return them. Only directories and regular files are
    touched: a symbolic link of such a name is neither followed nor removed, and a named
    pipe is not opened (its open waited for a writer, and the next trace with it). An
    entry that cannot be opened, locked (held, or on a filesystem without locks) or
    removed is left as it is."""
    full = Path(path).absolute()
    prefix = f".{full.name}.{what}-"
    removed = []
    try:
        entries = [e for e in os.scandir(full.parent) if _is_hidden_of(e.name, prefix)]
    except OSError:
        return removed
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            if not (is_dir or entry.is_file(follow_symlinks=False)):
                continue
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
            fd = os.open(entry.path, flags | (os.O_DIRECTORY if is_dir else 0))
        except OSError:
            continue  # a link, or replaced or gone meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its writer lives
        try:
            if is_dir:
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


#: what ``flock`` fails with on a filesystem that has no locks
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}
#: names tried before staging gives up (each lost only to another writer's sweep)
_ATTEMPTS = 8


class Staged:
    """A hidden directory (or file) beside ``path``, made and held by this writer until
    :meth:`release`: first the leftovers of writers killed while staging beside ``path``
    are removed (:func:`remove_leftovers`). The hold is on the entry itself, so it stays
    with it when renamed into place; release it after the rename (or the removal).

    Another writer's sweep may take the entry between its making and its lock (it locks,
    then removes, what nobody holds yet): the lock is taken, then the entry checked to be
    still there and the one locked, and on a loss a new name is tried. A lock refused
    because another holds it is such a loss, not a filesystem without locks: taken for
    one, the writer ran unheld and a later sweep removed its live trace."""

    def __init__(self, path: str | os.PathLike, what: str, directory: bool = True) -> None:
        self._fd: int | None = None
        remove_leftovers(path, what)
        for _ in range(_ATTEMPTS):
            self.path = hidden_beside(path, what)
            if self._made_and_held(directory):
                return
        raise OSError(
            errno.EAGAIN,
            f"{_ATTEMPTS} hidden entries made beside it were each removed by another "
            "writer before this one could hold it",
            str(path),
        )

    def _made_and_held(self, directory: bool) -> bool:
        """Make :attr:`path` and hold it; False where another writer's sweep took it."""
        if directory:
            self.path.mkdir()
            flags = os.O_RDONLY | os.O_DIRECTORY
        else:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(self.path, flags | os.O_NOFOLLOW, 0o666)
        except FileNotFoundError:
            return False  # swept before it was opened
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in _NO_LOCKS:
                os.close(fd)
                return False  # a sweep holds it, and removes it
            # a filesystem without locks (some FUSE ones): nothing is held, and since no
            # writer's entry can be locked there either, nothing is swept there
        try:
            now = os.lstat(self.path)
        except FileNotFoundError:
            now = None
        held = os.fstat(fd)
        if now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            os.close(fd)
            return False  # swept, lock and all, between the making and the lock
        self._fd = fd
        return True

    def remove(self) -> None:
        """Remove what is staged (if it is still under its hidden name), then release it."""
        if self.path.is_dir() and not self.path.is_symlink():
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                self.path.unlink()
        self.release()

    def release(self) -> None:
        """Let go of the hold (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


_RENAME_EXCHANGE = 2  # linux/fs.h


def exchange(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap the entries at ``a`` and ``b`` in one step (``renameat2`` with
    ``RENAME_EXCHANGE``), so that neither name is ever without its entry: a writer killed
    between the two renames of a swap left a replaced trace's path empty and the old
    trace under a hidden name for good. False where this system or filesystem cannot
    (then nothing moved); any other failure is an ``OSError``."""
    libc = _libc()
    swap = getattr(libc, "renameat2", None) if libc is not None else None
    if swap is None:
        return False
    at_cwd = -100  # AT_FDCWD
    if swap(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(b))


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if hasattr(libc, "renameat2"):
        libc.renameat2.argtypes = (
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_uint,
        )
        libc.renameat2.restype = ctypes.c_int
    return libc
