"""Reading a small input file a user names, safely: only a regular file, and only so much.

A configuration a command reads whole (a grid, a cost model) could be named as anything: a
named pipe, whose open waits for a writer forever, ``/dev/zero``, which never ends, or a
file far larger than any such document. Each is refused before it is read, naming what the
path is. A leaf module (like ``units``), so every package can use it.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections import Counter
from typing import Any, BinaryIO

from migcodec.units import format_size


def file_kind(mode: int) -> str:
    """``a named pipe (FIFO)``: what a file that is not a regular one is, for a message."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((text for test, text in kinds if test(mode)), "not a regular file")


def special_kind(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it exists and is not a regular file (:func:`file_kind`: a
    directory, a named pipe, a device...), else ``None`` (a regular file, or missing or
    unreadable: opening it says so)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return None if stat.S_ISREG(mode) else file_kind(mode)


def check_regular_file(path: str | os.PathLike, what: str, fix: str) -> None:
    """Refuse ``path`` unless it is a regular file (or missing: opening it says so), before
    it is opened: a FIFO's open blocks until a writer comes, a device never ends.
    Raises :class:`ValueError` ``"{what} {path} is <kind>, not a regular file; {fix}"``."""
    kind = special_kind(path)
    if kind is not None:
        raise ValueError(f"{what} {path} is {kind}, not a regular file; {fix}")


class NotARegularFile(OSError):
    """A file to read is a directory, a named pipe, a device or a socket: a pipe's reader
    waits for a writer forever and a device never ends, so neither is read. The message
    names what the path is."""


def open_regular(path: str | os.PathLike, *, blocking: bool = True) -> BinaryIO:
    """``path`` opened for reading, refused (:class:`NotARegularFile`) unless it is a
    regular file. Opened without blocking and checked by its descriptor, so what is read is
    what was checked (a pipe's open would wait for a writer); its reads then block unless
    ``blocking`` is false (a read that would wait returns ``None``)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(f"{path} is {file_kind(mode)}, not a regular file")
        if blocking:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_small_file(path: str | os.PathLike, what: str, limit: int, fix: str) -> bytes:
    """The bytes of ``path``, a regular file (:func:`open_regular`) of at most ``limit``
    bytes; at most ``limit + 1`` bytes are read. Raises :class:`ValueError` naming
    ``what``, the path and ``fix`` for another kind of file or a larger one, and
    :class:`OSError` as ``open``."""
    try:
        with open_regular(path, blocking=False) as f:
            data = f.read(limit + 1)
    except NotARegularFile as exc:
        raise ValueError(f"{what} {exc}; {fix}") from None
    if data is None:  # a "file" whose bytes come when something writes them
        raise ValueError(f"{what} {path} cannot be read without waiting; {fix}")
    if len(data) > limit:
        raise ValueError(f"{what} {path} is larger than {format_size(limit)}; {fix}")
    return data


def parse_json(data: bytes | str) -> Any:
    """``json.loads``, with a document nested deeper than Python's parser follows refused
    as a :class:`ValueError` (``its JSON is nested too deeply``) like any other malformed
    one, instead of the parser's :class:`RecursionError`, which no caller expects; and an
    object that gives a key twice refused too (``json.loads`` keeps the last silently, so
    an edit that added a key instead of changing it was read as half of what it says)."""
    try:
        return json.loads(data, object_pairs_hook=_object)
    except RecursionError:
        raise ValueError("its JSON is nested too deeply") from None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; a key given twice is a :class:`ValueError`."""
    found = dict(pairs)
    if len(found) != len(pairs):
        counts = Counter(key for key, _ in pairs)
        twice = sorted(key for key, n in counts.items() if n > 1)
        raise ValueError(f"its JSON gives the key {', '.join(map(repr, twice))} more than once")
    return found


def json_problem(value: object, where: str) -> str | None:
    """What part of ``value``, a document about to be written as JSON, would not read back
    as written (``its meta['a'] is tuple (1, 2), ...``), or ``None``: JSON reads a tuple back
    as a list and an integer key as a string, and has no form of a numpy scalar or a set.
    A document migcodec stores must load equal to what was saved, or not be saved."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has the key {key!r}; JSON keeps only string keys"
            problem = json_problem(item, f"{where}[{key!r}]")
            if problem is not None:
                return problem
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problem = json_problem(item, f"{where}[{i}]")
            if problem is not None:
                return problem
    elif value is not None and not isinstance(value, (str, int, float)):  # bool is an int
        return (
            f"{where} is {type(value).__name__} {value!r}, which JSON does not read back as "
            "written; use lists, strings and numbers"
        )
    return None


def cannot_create_in(directory: str | os.PathLike) -> str | None:
    """Why no file can be made in ``directory`` (the system's words), or ``None`` when one
    can: a file is made there and removed, since the permission bits say too little (root
    passes them on /proc, /sys and read-only mounts, where the write itself fails)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".migcodec-", dir=directory)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(probe)
    return None
