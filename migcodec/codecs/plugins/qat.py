"""``qat``: gzip over the whole multi-page request, on Intel QAT through QATzip.

Paths, chosen per instance and reported per request (``stats.path``):

- ``hardware``: ``libqatzip.so.3`` loads and a QAT device is present; one ``qzCompress``
  per request, as QEMU's multifd-qatzip sends a whole packet in one call.
- ``software``: QATzip runs its own software backup (``qzInit`` or the session reported a
  "using SW" status, or ``qzCompressExt`` flagged the request as run in software).
- ``emulated``: no library or no device; zlib-ng writes a gzip stream of the same format and
  the request carries the *modelled* device time in ``stats.device_s``.

The payload is one or more gzip members (RFC 1952; QATzip writes one per hardware buffer),
which any gzip reader decodes; the decoder refuses members QATzip would not write (empty,
or short but not the last: :func:`inflate_gzip_members`). A hardware error on a request
sends that request through the emulated path, counted in ``counters.fallbacks``.
"""

from __future__ import annotations

import numpy as np
from zlib_ng import zlib_ng

from migcodec.codecs.accel import AcceleratorCodec, accelerator_probe
from migcodec.codecs.base import PageEncoding, Probe, is_integer
from migcodec.codecs.device_model import LABEL
from migcodec.codecs.encoded import CodecPath
from migcodec.codecs.errors import DecodeError
from migcodec.codecs.vendor import qatzip
from migcodec.codecs.vendor.detect import load_library, qat_devices

GZIP_WBITS = 31


#: QATzip writes one member per hardware buffer of input, so every member but the last
#: inflates to a whole buffer: 64 KiB with the defaults migcodec's sessions take
#: (``qzGetDefaultsDeflate``; 1 MiB on 4th-generation devices). A smaller member that is not
#: the last is refused: each member costs a fixed amount of work, and this floor keeps that
#: cost small against the output it brings (a payload of tiny members would otherwise take
#: far longer than a valid one of the same size).
MIN_MEMBER_BYTES = 64 * 1024
#: input fed to the inflater at once for a member after the first; doubled while the member
#: goes on. The inflater copies what it does not consume (``unused_data``), so feeding all
#: the rest for every member would cost (members x payload) bytes of copying; this way a
#: member of ``n`` bytes is fed at most ``2n + FIRST_STEP``.
FIRST_STEP = 64


def inflate_gzip_members(blob, expected: int) -> bytes:
    """Inflate concatenated gzip members to exactly ``expected`` bytes.

    Output is capped at what is still expected before each member is inflated, so a hostile
    stream cannot balloon; an empty payload, a truncated member, excess output and bytes
    after the last member are all :class:`DecodeError`. So are an empty member and one that
    is not the last but inflates to less than :data:`MIN_MEMBER_BYTES` (QATzip writes
    neither). The work is linear in the payload: the first member is handed all of it once
    (one call for the common single-member payload); later members are handed doubling
    slices (:data:`FIRST_STEP`), so what an inflater copies past a member's end stays within
    the member's own size.
    """
    data = memoryview(blob).cast("B")
    size = data.nbytes
    if not size:
        raise DecodeError(f"qat payload is empty where {expected} bytes of pages were expected")
    parts: list[bytes] = []
    produced = 0
    pos = 0
    member = 0
    while True:
        out, pos = _inflate_member(data, pos, expected - produced, member, expected, parts)
        produced += out
        if pos == size:
            break
        if produced == expected:
            raise DecodeError(
                f"qat payload has {size - pos} bytes after the gzip member that completed "
                f"all {expected} bytes"
            )
        if out < MIN_MEMBER_BYTES:
            raise DecodeError(
                f"qat gzip member {member} inflates to {out} bytes but is not the last; "
                f"QATzip fills every member but the last with a whole {MIN_MEMBER_BYTES}-byte "
                "hardware buffer, so this payload was not written by QATzip or migcodec"
            )
        member += 1
    if produced != expected:
        raise DecodeError(f"qat payload inflates to {produced} bytes, not {expected}")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _inflate_member(
    data: memoryview, pos: int, room: int, member: int, expected: int, parts: list[bytes]
) -> tuple[int, int]:
    """Inflate the member at ``pos`` to at most ``room`` bytes, appending its output to
    ``parts``; return its output length and the position after it."""
    what = f"qat gzip member {member}"
    inflater = zlib_ng.decompressobj(GZIP_WBITS)
    step = data.nbytes - pos if member == 0 else FIRST_STEP
    out = 0
    while True:
        chunk = data[pos : pos + step]
        try:
            piece = inflater.decompress(chunk, room - out + 1)  # one byte over: "past"
        except zlib_ng.error as exc:
            raise DecodeError(f"{what} is corrupt: {exc}") from exc
        out += len(piece)
        if piece:
            parts.append(piece)
        if out > room:
            raise DecodeError(f"{what} inflates past the {expected} bytes the batch names")
        if inflater.eof:
            if not out:
                raise DecodeError(f"{what} is empty; QATzip writes no empty members")
            return out, pos + len(chunk) - len(inflater.unused_data)
        pos += len(chunk)
        if pos >= data.nbytes:
            raise DecodeError(f"{what} ends before the end of the {expected} bytes the batch names")
        step *= 2


class QatCodec(AcceleratorCodec):
    """gzip at ``level`` (QATzip deflate levels 1..9; 1 is QEMU's default)."""

    name = "qat"
    device = "qat"
    vendor_error = qatzip.QatzipError
    vendor_setup = "QATzip session"

    def __init__(self, level: int = 1) -> None:
        if not is_integer(level) or not 1 <= level <= 9:
            raise ValueError(f"qat level must be an integer 1..9, got {level!r}")
        super().__init__()
        self.level = level

    @classmethod
    def probe(cls) -> Probe:
        lookup = load_library(qatzip.SONAME, qatzip.ENV_LIBRARY, qatzip.INSTALL_HINT)
        emulated = f"zlib-ng writes the same gzip format; device time {LABEL}"
        return accelerator_probe(lookup, qat_devices(), "QATzip", "QAT device", emulated)

    # -- the vendor's handle -----------------------------------------------------------
    def _open_vendor(self, probe: Probe) -> tuple[qatzip.QatzipDeflate, str]:
        lookup = load_library(qatzip.SONAME, qatzip.ENV_LIBRARY, qatzip.INSTALL_HINT)
        vendor = qatzip.QatzipDeflate(lookup.handle, self.level)
        return vendor, vendor.reason

    def _expected_path(self) -> CodecPath:
        path = super()._expected_path()
        return CodecPath.SOFTWARE if path == CodecPath.HARDWARE and self._handle.software else path

    # -- transform -------------------------------------------------------------------
    def encode_pages(self, pages: np.ndarray) -> PageEncoding:
        data = np.ascontiguousarray(pages)
        with self._lock:
            vendor = self._open()
            if vendor is not None:
                try:
                    result = vendor.compress(data)
                except qatzip.QatzipError as exc:
                    self.counters.fallbacks += 1
                    self.counters.last_error = str(exc)
                else:
                    path = CodecPath.SOFTWARE if result.software else CodecPath.HARDWARE
                    return self._ran(PageEncoding(result.blob), path)
            blob = zlib_ng.compress(data, self.level, GZIP_WBITS)
            return self._ran(PageEncoding(blob), CodecPath.EMULATED, data.nbytes, data.shape[0])

    def decode_pages(self, blob, n_pages, page_size):
        expected = n_pages * page_size
        with self._lock:
            vendor = self._open()
            if vendor is not None:
                try:
                    return vendor.decompress(blob, expected)
                except (qatzip.QatzipError, DecodeError) as exc:
                    # migcodec's inflater is the arbiter: QATzip may refuse gzip it did not
                    # write (no QZ extra field), and a real corruption fails below as well
                    self.counters.decode_fallbacks += 1
                    self.counters.last_error = str(exc)
        return inflate_gzip_members(blob, expected)
