"""Files named by a local path or an fsspec URL: where traces and cached tables live.

A trace corpus read by several hosts must be one shared copy, so a trace can be named by a
URL (``s3://bucket/corpus/redis``, ``gcs://...``, ``file:///data/redis``, ``memory://t``)
as well as by a path. URLs are opened through `fsspec <https://filesystem-spec.rtfd.io>`_,
imported only when a URL is given: plain paths work without it. A protocol whose
filesystem package is not installed (``s3fs`` for ``s3://``) is refused with the package
to install.

:class:`Location` has just what trace reading and table caching need: existence, whole-file
reads, an open binary file with its size (records are read by offset), an atomic write, a
listing for corpora and per-file sizes and change stamps for cache keys.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from migcodec.files import NotARegularFile, open_regular
from migcodec.staging import through_link


class StorageError(ValueError):
    """A URL cannot be opened here: fsspec or the protocol's filesystem is missing, or
    the protocol is unknown. The message names the package to install."""


class NotPermitted(StorageError):
    """Whether a local path exists, or what it is, cannot be told: a directory on its way
    may not be searched by this user. pathlib raises ``PermissionError`` there, which
    reached users as a traceback."""


def _looked_at(path: Path, answer: Callable[[], bool]) -> bool:
    """``answer()`` (pathlib's exists, is_file or is_dir of ``path``), or
    :class:`NotPermitted` naming ``path`` where a directory hides it."""
    try:
        return answer()
    except PermissionError as exc:
        raise NotPermitted(
            f"cannot read {path}: {exc.strerror} (a directory on its way may not be searched "
            "by this user); read it as a user allowed to, or change that directory's "
            "permissions"
        ) from None


def is_url(target: str | os.PathLike) -> bool:
    """True for ``protocol://...`` (and chained fsspec URLs ``a::b://...``)."""
    return isinstance(target, str) and "://" in target


def location(target: str | os.PathLike | Location) -> Location:
    """The :class:`Location` of a path or URL (a ``Location`` is returned as is)."""
    if isinstance(target, Location):
        return target
    if is_url(target):
        return FsspecLocation.from_url(str(target))
    return LocalLocation(Path(target))


class Location:
    """A file or directory: a local path (:class:`LocalLocation`) or a path on an fsspec
    filesystem (:class:`FsspecLocation`). ``str()`` is the path or URL as a user names it."""

    def __truediv__(self, name: str) -> Location:
        raise NotImplementedError

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def parent(self) -> Location:
        raise NotImplementedError

    @property
    def local_path(self) -> Path | None:
        """The local path when the file lives on this machine's filesystem, else None."""
        raise NotImplementedError

    def exists(self) -> bool:
        raise NotImplementedError

    def is_file(self) -> bool:
        raise NotImplementedError

    def is_dir(self) -> bool:
        raise NotImplementedError

    def read_bytes(self) -> bytes:
        raise NotImplementedError

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def open_read(self) -> tuple[BinaryIO, int]:
        """An open binary file and its size (``FileNotFoundError`` when missing; a local
        directory, pipe or device is refused, :class:`NotARegularFile`, as by
        :meth:`read_bytes`)."""
        raise NotImplementedError

    def write_bytes(self, data: bytes) -> None:
        """Write the whole file at once: readers see the old file or the new one, never
        part of it (a local file is written beside and renamed; an object store's put is
        atomic), so concurrent runs sharing a table cache never read a torn table."""
        raise NotImplementedError

    def glob(self, pattern: str) -> list[Location]:
        """Entries matching ``pattern`` under this directory, sorted."""
        raise NotImplementedError

    def files(self) -> Iterator[tuple[str, int, str]]:
        """Every file under this directory as ``(relative name, size, change stamp)``,
        sorted: what a cache key of the directory's contents is made from."""
        raise NotImplementedError


class LocalLocation(Location):
    """A path on this machine, read with the standard library."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"LocalLocation({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalLocation) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __truediv__(self, name: str) -> LocalLocation:
        return LocalLocation(self.path / name)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def parent(self) -> LocalLocation:
        return LocalLocation(self.path.parent)

    @property
    def local_path(self) -> Path:
        return self.path

    def exists(self) -> bool:
        return _looked_at(self.path, self.path.exists)

    def is_file(self) -> bool:
        return _looked_at(self.path, self.path.is_file)

    def is_dir(self) -> bool:
        return _looked_at(self.path, self.path.is_dir)

    def read_bytes(self) -> bytes:
        with open_regular(self.path) as f:
            return f.read()

    def open_read(self) -> tuple[BinaryIO, int]:
        f = open_regular(self.path)  # the caller keeps it open while streaming
        return f, os.fstat(f.fileno()).st_size

    def write_bytes(self, data: bytes, through_links: bool = True) -> None:
        """Written beside under a name of this write's own, then renamed: with one name for
        every writer, a second run's write truncated the file the first was renaming (a torn
        table), and the second's rename then found no file. A symbolic link is written
        through: the file it points to is replaced, not the link by a file of its own;
        unless ``through_links`` is false (a cache's own file: a link planted there made a
        calibration replace a trace's manifest), when the link itself is replaced."""
        target = through_link(self.path) if through_links else self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
        try:
            tmp.write_bytes(data)
            tmp.replace(target)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk leaves no partial file behind
            raise

    def glob(self, pattern: str) -> list[Location]:
        return [LocalLocation(p) for p in sorted(self.path.glob(pattern))]

    def files(self) -> Iterator[tuple[str, int, str]]:
        for f in sorted(self.path.rglob("*")):
            if f.is_file():
                st = f.stat()
                yield str(f.relative_to(self.path)), st.st_size, str(st.st_mtime_ns)


#: info keys that change when an object is rewritten, by filesystem (first found is used)
_STAMP_KEYS = ("mtime", "LastModified", "last_modified", "updated", "ETag", "etag", "created")


class FsspecLocation(Location):
    """A path on an fsspec filesystem, named by its URL."""

    def __init__(self, fs: Any, path: str, url: str) -> None:
        self.fs = fs
        self.path = path.rstrip("/") or "/"
        self.url = url if url.endswith("://") else url.rstrip("/")  # keep a bare "memory://"

    @classmethod
    def from_url(cls, url: str) -> FsspecLocation:
        try:
            from fsspec.core import url_to_fs
        except ImportError:
            raise StorageError(
                f"{url}: opening URLs needs fsspec: pip install fsspec "
                "(or pip install 'migcodec[distributed]')"
            ) from None
        try:
            fs, path = url_to_fs(url)
        except ImportError as exc:  # fsspec names the package, e.g. "Install s3fs to ..."
            raise StorageError(
                f"{url}: {exc} (pip install it on every host that reads it)"
            ) from exc
        except ValueError as exc:
            raise StorageError(f"{url}: {exc}; give a path or an fsspec URL") from exc
        except Exception as exc:
            # a filesystem is made by opening what the URL names (a chained zip:: or tar::
            # reads its archive, ftp:// connects): its own errors, of any type, are one line
            why = " ".join(str(exc).split()) or "no reason given"
            raise StorageError(
                f"{url}: cannot open it ({type(exc).__name__}: {why}); check the URL, and "
                "that what it names exists and is reachable from here"
            ) from exc
        return cls(fs, path, url)

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"FsspecLocation({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FsspecLocation) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __truediv__(self, name: str) -> FsspecLocation:
        return FsspecLocation(self.fs, f"{self.path.rstrip('/')}/{name}", _join(self.url, name))

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> FsspecLocation:
        return FsspecLocation(
            self.fs, self.path.rsplit("/", 1)[0] or "/", self.url.rsplit("/", 1)[0]
        )

    @property
    def local_path(self) -> Path | None:
        from fsspec.implementations.local import LocalFileSystem

        return Path(self.path) if isinstance(self.fs, LocalFileSystem) else None

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def is_file(self) -> bool:
        return bool(self.fs.isfile(self.path))

    def is_dir(self) -> bool:
        return bool(self.fs.isdir(self.path))

    def read_bytes(self) -> bytes:
        try:
            return bytes(self.fs.cat_file(self.path))
        except OSError as exc:
            self._raise_if_directory(exc)
            raise

    def open_read(self) -> tuple[BinaryIO, int]:
        try:
            f = self.fs.open(self.path, "rb")
        except OSError as exc:
            self._raise_if_directory(exc)
            raise
        size = getattr(f, "size", None)
        return f, int(size if size is not None else self.fs.size(self.path))

    def _raise_if_directory(self, exc: OSError) -> None:
        """Raise :class:`NotARegularFile` when the read that failed with ``exc`` was of a
        directory, whose filesystem's own error names the path alone (as a missing file's,
        or with no reason). Asked only once a read failed, so a read costs no call to the
        store more than it did."""
        try:
            directory = self.fs.isdir(self.path)
        except OSError:
            return
        if directory:
            raise NotARegularFile(f"{self.url} is a directory, not a regular file") from exc

    def write_bytes(self, data: bytes) -> None:
        local = self.local_path
        if local is not None:
            LocalLocation(local).write_bytes(data)
            return
        self.fs.pipe_file(self.path, data)

    def glob(self, pattern: str) -> list[Location]:
        base_path, base_url = self.path.rstrip("/"), self.url
        found = sorted(self.fs.glob(f"{base_path}/{pattern}"))
        out: list[Location] = []
        for p in found:
            rel = p[len(base_path) :].lstrip("/") if p.startswith(base_path) else p
            out.append(FsspecLocation(self.fs, p, _join(base_url, rel)))
        return out

    def files(self) -> Iterator[tuple[str, int, str]]:
        base = self.path.rstrip("/") + "/"
        found = self.fs.find(self.path, detail=True)
        for name in sorted(found):
            info = found[name]
            if info.get("type", "file") != "file":
                continue
            stamp = next((str(info[k]) for k in _STAMP_KEYS if info.get(k) is not None), "")
            rel = name[len(base) :] if name.startswith(base) else name
            yield rel, int(info.get("size") or 0), stamp


def _join(url: str, name: str) -> str:
    return f"{url}{name}" if url.endswith("://") else f"{url}/{name}"
