"""``qat``: gzip over the whole multi-page request, on Intel QAT through QATzip.

Paths, chosen per instance and reported per request (``stats.path``):

- ``hardware``: ``libqatzip.so.3`` loads and a QAT device is present; one ``qzCompress``
  per request, as QEMU's multifd-qatzip sends a whole packet in one call.
- ``software``: QATzip runs its own software backup (``qzInit`` or the session reported a
  "using SW" status, or ``qzCompressExt`` flagged the request as run in software).
- ``emulated``: no library or no device; zlib-ng writes a gzip stream of the same format and
  the request carries the *modelled* device time in ``stats.device_s``.

The payload is one or more gzip members (RFC 1952; QATzip writes one per hardware buffer),
which any gzip reader decodes. A hardware error on a request sends that request through
the emulated path, counted in ``counters.fallbacks``.
"""

from __future__ import annotations

import numpy as np
from zlib_ng import zlib_ng

from migcodec.codecs.accel import AcceleratorCodec, accelerator_probe
from migcodec.codecs.base import PageEncoding, Probe
from migcodec.codecs.device_model import LABEL
from migcodec.codecs.errors import DecodeError
from migcodec.codecs.plugins.zlib_ng import inflate_capped
from migcodec.codecs.vendor import qatzip
from migcodec.codecs.vendor.detect import load_library, qat_devices

GZIP_WBITS = 31


def inflate_gzip_members(blob, expected: int) -> bytes:
    """Inflate concatenated gzip members to exactly ``expected`` bytes.

    Output is capped at what is still expected before each member is inflated, so a hostile
    stream cannot balloon; an empty payload, a truncated member, excess output and bytes
    after the last member are all :class:`DecodeError`.
    """
    data = memoryview(blob).cast("B")
    if not data.nbytes:
        raise DecodeError(f"qat payload is empty where {expected} bytes of pages were expected")
    parts: list[bytes] = []
    produced = 0
    member = 0
    while True:
        room = expected - produced
        if room <= 0:
            raise DecodeError(
                f"qat payload has {data.nbytes} bytes after the gzip member that completed "
                f"all {expected} bytes"
            )
        chunk, inflater = inflate_capped(data, room, GZIP_WBITS, f"qat gzip member {member}")
        if not inflater.eof:
            what = "inflates past" if inflater.unconsumed_tail else "ends before the end of"
            raise DecodeError(
                f"qat gzip member {member} {what} the {expected} bytes the batch names"
            )
        parts.append(chunk)
        produced += len(chunk)
        data = memoryview(inflater.unused_data)
        member += 1
        if not data.nbytes:
            break
    if produced != expected:
        raise DecodeError(f"qat payload inflates to {produced} bytes, not {expected}")
    return parts[0] if len(parts) == 1 else b"".join(parts)


class QatCodec(AcceleratorCodec):
    """gzip at ``level`` (QATzip deflate levels 1..9; 1 is QEMU's default)."""

    name = "qat"
    kind = "compress"
    device = "qat"
    vendor_error = qatzip.QatzipError
    vendor_setup = "QATzip session"
    requires = ("zlib-ng",)

    def __init__(self, level: int = 1) -> None:
        if not isinstance(level, int) or not 1 <= level <= 9:
            raise ValueError(f"qat level must be an integer 1..9, got {level!r}")
        super().__init__()
        self.level = level

    def params(self) -> dict:
        return {"level": self.level}

    @classmethod
    def probe(cls) -> Probe:
        lookup = load_library(qatzip.SONAME, qatzip.ENV_LIBRARY, qatzip.INSTALL_HINT)
        emulated = f"zlib-ng writes the same gzip format; device time {LABEL}"
        return accelerator_probe(lookup, qat_devices(), "QATzip", "QAT device", emulated)

    # -- session ---------------------------------------------------------------------
    def _open_vendor(self, probe: Probe) -> tuple[qatzip.QatzipSession, str]:
        lookup = load_library(qatzip.SONAME, qatzip.ENV_LIBRARY, qatzip.INSTALL_HINT)
        session = qatzip.QatzipSession(lookup.handle, self.level)
        return session, session.reason

    def _expected_path(self) -> str:
        path = super()._expected_path()
        return "software" if path == "hardware" and self._handle.software else path

    # -- transform -------------------------------------------------------------------
    def _encode_pages(self, pages: np.ndarray, indices: np.ndarray | None) -> PageEncoding:
        data = np.ascontiguousarray(pages)
        session = self._open()
        if session is not None:
            try:
                result = session.compress(data)
            except qatzip.QatzipError as exc:
                self.counters.fallbacks += 1
                self.counters.last_error = str(exc)
            else:
                self._ran("software" if result.software else "hardware")
                return PageEncoding(result.blob)
        blob = zlib_ng.compress(data, self.level, GZIP_WBITS)
        self._ran("emulated", data.nbytes, data.shape[0])
        return PageEncoding(blob)

    def _decode_pages(self, blob, modes, current, page_size):
        expected = modes.shape[0] * page_size
        with self._lock:
            session = self._open()
            if session is not None:
                try:
                    return session.decompress(blob, expected)
                except (qatzip.QatzipError, DecodeError) as exc:
                    # migcodec's inflater is the arbiter: QATzip may refuse gzip it did not
                    # write (no QZ extra field), and a real corruption fails below as well
                    self.counters.decode_fallbacks += 1
                    self.counters.last_error = str(exc)
        return inflate_gzip_members(blob, expected)
