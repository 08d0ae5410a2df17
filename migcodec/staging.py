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
import fcntl
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


def _is_hidden_of(name: str, prefix: str) -> bool:
    token = name[len(prefix) :]
    return (
        name.startswith(prefix)
        and len(token) == _TOKEN_DIGITS
        and all(c in string.hexdigits for c in token)
    )


def remove_leftovers(path: str | os.PathLike, what: str) -> list[Path]:
    """Remove the ``.NAME.WHAT-XXXXXXXX`` entries beside ``path`` that no living writer
    holds (:class:`Staged`), and return them. A symbolic link of such a name is neither
    followed nor removed; an entry that cannot be opened, locked (held, or on a
    filesystem without locks) or removed is left as it is."""
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
            fd = os.open(
                entry.path, os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if is_dir else 0)
            )
        except OSError:
            continue  # a link, or gone meanwhile
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


class Staged:
    """A hidden directory (or file) beside ``path``, made and held by this writer until
    :meth:`release`: first the leftovers of writers killed while staging beside ``path``
    are removed (:func:`remove_leftovers`). The hold is on the entry itself, so it stays
    with it when renamed into place; release it after the rename (or the removal)."""

    def __init__(self, path: str | os.PathLike, what: str, directory: bool = True) -> None:
        remove_leftovers(path, what)
        self.path = hidden_beside(path, what)
        if directory:
            self.path.mkdir()
            flags = os.O_RDONLY | os.O_DIRECTORY
        else:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
        try:
            self._fd: int | None = os.open(self.path, flags | os.O_NOFOLLOW, 0o666)
        except OSError:
            self.remove()
            raise
        # a filesystem without locks (some FUSE ones): nothing is held, and since no
        # writer's entry can be locked there either, nothing is swept there
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

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
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            os.close(fd)
