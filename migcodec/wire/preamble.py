"""The preamble: what the stream is, and the codec table the destination must be able to run.

Parsing checks every length against a bound before reading, and resolves every codec
before a single page moves, so a destination missing a plugin refuses at the start, naming
the package to install, instead of failing mid-stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from migcodec.codecs import Codec, CodecError, get_codec
from migcodec.codecs.errors import CodecNotFound
from migcodec.files import parse_json
from migcodec.hashing import checksum
from migcodec.wire import format as fmt
from migcodec.wire.errors import (
    BadPreamble,
    ChecksumMismatch,
    CodecMissing,
    FrameTooLarge,
    UnsupportedVersion,
    one_line,
    peer_text,
)

_PREAMBLE = -1  # frame index used in preamble error messages


@dataclass
class Preamble:
    """What a stream is. ``packages`` maps a codec id to the Python distribution that
    provides that codec on the source, for codecs that are not migcodec's own; with any,
    the preamble is written as version 2 (see :mod:`migcodec.wire.format`)."""

    page_size: int
    memory_pages: int
    max_batch_pages: int = 64
    codecs: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> config
    version: int = fmt.VERSION
    flags: int = 0
    packages: dict[int, str] = field(default_factory=dict)  # id -> distribution name

    def encode(self) -> bytes:
        packages = {i: p for i, p in self.packages.items() if p}
        for codec_id, package in packages.items():
            if codec_id not in self.codecs:
                raise ValueError(f"package {package!r} for codec id {codec_id}, not in the table")
            if len(package) > 255 or not fmt.PACKAGE_NAME.fullmatch(package):
                raise ValueError(f"{package!r} is not a Python distribution name")
        version = fmt.VERSION_PACKAGES if packages else self.version
        parts = [
            fmt.PREAMBLE_FIXED.pack(
                fmt.MAGIC,
                version,
                self.flags,
                self.page_size,
                self.memory_pages,
                self.max_batch_pages,
                len(self.codecs),
            )
        ]
        for codec_id, config in sorted(self.codecs.items()):
            name = config["name"].encode()
            blob = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
            if len(name) > fmt.MAX_CODEC_NAME or len(blob) > fmt.MAX_CODEC_CONFIG:
                raise ValueError(f"codec {config['name']!r}: name or config too long for v1")
            parts += [fmt.CODEC_ENTRY.pack(codec_id, len(name), len(blob)), name, blob]
            if version == fmt.VERSION_PACKAGES:
                package = packages.get(codec_id, "").encode("ascii")
                parts += [fmt.PACKAGE_LENGTH.pack(len(package)), package]
        body = b"".join(parts)
        return body + fmt.CHECKSUM.pack(checksum([body]))


def validate_geometry(page_size: int, memory_pages: int, max_batch_pages: int) -> None:
    """Raise :class:`BadPreamble` for impossible values, :class:`FrameTooLarge` for a batch
    whose frame buffer this reader will not allocate."""
    if not fmt.MIN_PAGE_SIZE <= page_size <= fmt.MAX_PAGE_SIZE or page_size % 8:
        raise BadPreamble(
            f"page size {page_size} is not a multiple of 8 in "
            f"{fmt.MIN_PAGE_SIZE}..{fmt.MAX_PAGE_SIZE}",
            _PREAMBLE,
            0,
        )
    if not 0 < memory_pages <= fmt.MAX_MEMORY_PAGES:
        raise BadPreamble(f"memory of {memory_pages} pages is out of range", _PREAMBLE, 0)
    if not 0 < max_batch_pages <= fmt.MAX_BATCH_PAGES:
        raise BadPreamble(
            f"batch limit of {max_batch_pages} pages is out of range 1..{fmt.MAX_BATCH_PAGES}",
            _PREAMBLE,
            0,
        )
    if max_batch_pages * page_size > fmt.MAX_BATCH_BYTES:
        raise FrameTooLarge(
            f"batches of {max_batch_pages} pages of {page_size} bytes need "
            f"{_size(max_batch_pages * page_size)} of frame buffer; the limit is "
            f"{_size(fmt.MAX_BATCH_BYTES)}",
            _PREAMBLE,
            0,
        )


def _size(nbytes: int) -> str:
    return f"{nbytes / (1 << 30):g} GiB" if nbytes >= 1 << 30 else f"{nbytes / (1 << 20):g} MiB"


def read_preamble(read_exact: Callable[..., bytes]) -> Preamble:
    """Parse a preamble through ``read_exact(n, frame_index[, read])`` (which raises on
    EOF; ``read``, ``(bytes before, whole length)``, when the ``n`` bytes are a part of one
    read, as :meth:`~migcodec.wire.reader.FrameReader._fill` takes it)."""
    # the magic alone first: a peer of another protocol that sends less than the fixed part
    # and waits for an answer (an HTTP request, a probe) is refused at once, not left to the
    # idle timeout, whose message would say it sent nothing. Both reads are parts of the
    # fixed part's read, which is what a stream that ends inside it names
    size, head = fmt.PREAMBLE_FIXED.size, len(fmt.MAGIC)
    magic = read_exact(head, _PREAMBLE, (0, size))
    if magic != fmt.MAGIC:
        raise BadPreamble(f"not a migcodec stream (magic {magic!r})", _PREAMBLE, 0)
    fixed = magic + read_exact(size - head, _PREAMBLE, (head, size))
    _, version, flags, page_size, memory_pages, max_batch, count = fmt.PREAMBLE_FIXED.unpack(fixed)
    if version not in fmt.VERSIONS:
        raise UnsupportedVersion(
            f"stream version {version}; this reader speaks versions "
            f"{', '.join(map(str, fmt.VERSIONS))} (upgrade migcodec on the older side)",
            _PREAMBLE,
            8,
        )
    parts = [fixed]
    offset = len(fixed)
    if count > fmt.MAX_CODECS:
        raise FrameTooLarge(f"codec table of {count} entries", _PREAMBLE, offset)
    raw_entries = []
    for _ in range(count):
        head = read_exact(fmt.CODEC_ENTRY.size, _PREAMBLE)
        codec_id, name_len, config_len = fmt.CODEC_ENTRY.unpack(head)
        if name_len > fmt.MAX_CODEC_NAME or config_len > fmt.MAX_CODEC_CONFIG:
            raise FrameTooLarge(
                f"codec entry with a {name_len}-byte name and {config_len}-byte config",
                _PREAMBLE,
                offset,
            )
        name = read_exact(name_len, _PREAMBLE)
        config = read_exact(config_len, _PREAMBLE)
        parts += [head, name, config]
        package = b""
        if version == fmt.VERSION_PACKAGES:
            length = read_exact(fmt.PACKAGE_LENGTH.size, _PREAMBLE)
            (package_len,) = fmt.PACKAGE_LENGTH.unpack(length)
            package = read_exact(package_len, _PREAMBLE)
            parts += [length, package]
        raw_entries.append((offset, codec_id, name, config, package))
        offset += len(head) + name_len + config_len
        if version == fmt.VERSION_PACKAGES:
            offset += fmt.PACKAGE_LENGTH.size + len(package)
    (expected,) = fmt.CHECKSUM.unpack(read_exact(fmt.CHECKSUM.size, _PREAMBLE))
    if checksum(parts) != expected:
        raise ChecksumMismatch("preamble checksum does not match", _PREAMBLE, offset)
    if flags & ~fmt.PREAMBLE_FLAGS:  # after the checksum: a damaged preamble says so
        raise UnsupportedVersion(
            f"stream preamble sets flags {flags:#06x}, which this reader does not know "
            "(upgrade migcodec on the older side)",
            _PREAMBLE,
            10,
        )
    validate_geometry(page_size, memory_pages, max_batch)
    codecs: dict[int, dict[str, Any]] = {}
    packages: dict[int, str] = {}
    for entry_offset, codec_id, name, config, package in raw_entries:
        try:
            parsed = parse_json(config)
            ok = isinstance(parsed, dict) and parsed.get("name") == name.decode()
        except (UnicodeDecodeError, ValueError, RecursionError):  # deep nesting: RecursionError
            ok = False
        if not ok:
            raise BadPreamble(
                f"codec entry {codec_id} has an invalid config", _PREAMBLE, entry_offset
            )
        if codec_id in codecs:
            raise BadPreamble(f"codec id {codec_id} appears twice", _PREAMBLE, entry_offset)
        codecs[codec_id] = parsed
        if package:
            text = package.decode("ascii", "replace")
            if not fmt.PACKAGE_NAME.fullmatch(text):
                raise BadPreamble(
                    f"codec entry {codec_id} names package {peer_text(text)}, which is not a "
                    "Python distribution name",
                    _PREAMBLE,
                    entry_offset,
                )
            packages[codec_id] = text
    return Preamble(page_size, memory_pages, max_batch, codecs, version, flags, packages)


def resolve_codecs(
    preamble: Preamble, resolve: Callable[[dict[str, Any]], Codec] = get_codec
) -> dict[int, Codec]:
    """Instantiate every codec of the table, refusing the stream if any cannot run here.

    A codec that is not installed here, from a package the preamble names, is refused
    naming that package (checked to be a distribution name, and shown quoted)."""
    resolved = {}
    for codec_id, config in preamble.codecs.items():
        try:
            resolved[codec_id] = resolve(config)
            resolved[codec_id].check_page_size(preamble.page_size)
        except (CodecError, ValueError) as exc:
            name = peer_text(str(config.get("name")))
            package = preamble.packages.get(codec_id)
            # the package provides this codec: not a fall-back it names, which is missing
            # here too (its own error names it)
            if isinstance(exc, CodecNotFound) and package and exc.name == config.get("name"):
                why = (
                    f"no codec named {name} is installed here; install the Python package "
                    f"{peer_text(package)}, which provides it on the source"
                )
            else:
                why = one_line(str(exc))
            raise CodecMissing(
                f"cannot decode codec id {codec_id} of the peer's codec table ({name}): {why}",
                _PREAMBLE,
            ) from exc
    return resolved
