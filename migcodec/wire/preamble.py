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

from migcodec.checksum import checksum
from migcodec.codecs import Codec, CodecError, get_codec
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
    page_size: int
    memory_pages: int
    max_batch_pages: int = 64
    codecs: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> config
    version: int = fmt.VERSION
    flags: int = 0

    def encode(self) -> bytes:
        parts = [
            fmt.PREAMBLE_FIXED.pack(
                fmt.MAGIC,
                self.version,
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


def read_preamble(read_exact: Callable[[int, int], bytes]) -> Preamble:
    """Parse a preamble through ``read_exact(n, frame_index)`` (which raises on EOF)."""
    fixed = read_exact(fmt.PREAMBLE_FIXED.size, _PREAMBLE)
    magic, version, flags, page_size, memory_pages, max_batch, count = fmt.PREAMBLE_FIXED.unpack(
        fixed
    )
    if magic != fmt.MAGIC:
        raise BadPreamble(f"not a migcodec stream (magic {magic!r})", _PREAMBLE, 0)
    if version != fmt.VERSION:
        raise UnsupportedVersion(
            f"stream version {version}; this reader speaks version {fmt.VERSION} "
            "(upgrade migcodec on the older side)",
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
        raw_entries.append((offset, codec_id, name, config))
        offset += len(head) + name_len + config_len
    (expected,) = fmt.CHECKSUM.unpack(read_exact(fmt.CHECKSUM.size, _PREAMBLE))
    if checksum(parts) != expected:
        raise ChecksumMismatch("preamble checksum does not match", _PREAMBLE, offset)
    validate_geometry(page_size, memory_pages, max_batch)
    codecs: dict[int, dict[str, Any]] = {}
    for entry_offset, codec_id, name, config in raw_entries:
        try:
            parsed = json.loads(config)
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
    return Preamble(page_size, memory_pages, max_batch, codecs, version, flags)


def resolve_codecs(
    preamble: Preamble, resolve: Callable[[dict[str, Any]], Codec] = get_codec
) -> dict[int, Codec]:
    """Instantiate every codec of the table, refusing the stream if any cannot run here."""
    resolved = {}
    for codec_id, config in preamble.codecs.items():
        try:
            resolved[codec_id] = resolve(config)
            resolved[codec_id].check_page_size(preamble.page_size)
        except (CodecError, ValueError) as exc:
            raise CodecMissing(
                f"cannot decode codec id {codec_id} of the peer's codec table "
                f"({peer_text(str(config.get('name')))}): {one_line(str(exc))}",
                _PREAMBLE,
            ) from exc
    return resolved
