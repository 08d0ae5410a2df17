"""What accelerator plugins share: per-request path reporting, counters, modelled timing.

An accelerator plugin runs one of three paths per request and must say which:

``hardware``  the vendor library ran it on the device;
``software``  the vendor library ran it on its own software path (QATzip's sw_backup, QPL's
              software job after a busy queue);
``emulated``  migcodec's built-in software stood in for the device; the result then carries
              ``stats.device_s``, the *modelled* device time (see ``device_model``).

:class:`AcceleratorCodec` gives its transform :meth:`~AcceleratorCodec._ran`, which returns
the request's :class:`~migcodec.codecs.base.PageEncoding` with its path (and modelled time);
the framework's ``encode`` records them, as it does for any codec. Its
:class:`PathCounters` count requests per path, fall-backs and retries so an engine or a test
can see what really happened.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import ClassVar

from migcodec.codecs.base import Codec, PageEncoding, Probe
from migcodec.codecs.device_model import DeviceModel, device_model
from migcodec.codecs.encoded import CodecPath
from migcodec.codecs.errors import CodecUnavailable


@dataclass
class PathCounters:
    """What one codec instance did; all counts since construction (or :meth:`reset`)."""

    #: encode requests that reached the transform, per path
    hardware: int = 0
    software: int = 0
    emulated: int = 0
    #: requests that left the hardware path because of an error (not by design)
    fallbacks: int = 0
    #: pages sent through a software path while hardware was active (IAA busy queues)
    software_pages: int = 0
    #: resubmissions after a busy work queue
    retries: int = 0
    #: pages sent raw because the device reported an error for them
    page_errors: int = 0
    #: decodes that left the vendor library for migcodec's inflater after a device error
    decode_fallbacks: int = 0
    #: the last error that caused a fall-back, for reports
    last_error: str = ""

    def count(self, path: CodecPath) -> None:
        name = str(path)  # the field named by the path's value
        setattr(self, name, getattr(self, name) + 1)

    def as_dict(self) -> dict:
        return asdict(self)

    def reset(self) -> None:
        for name, value in asdict(PathCounters()).items():
            setattr(self, name, value)


class AcceleratorCodec(Codec):
    """Base of plugins with a device path: a vendor handle opened on first use, per-path
    counters, and :meth:`_ran`, which a transform returns its result through.

    The vendor handle (the library's state, its jobs and their buffers) serves one request at
    a time: the transform and the decoder hold :attr:`_lock` while they use it.
    """

    #: which :mod:`device_model` entry models the device
    device: ClassVar[str]

    #: what the vendor library raises when its state or jobs cannot be set up
    vendor_error: ClassVar[type[Exception]]
    #: what is being set up, for "could not be set up" reasons ("QATzip session")
    vendor_setup: ClassVar[str]

    def __init__(self) -> None:
        self.counters = PathCounters()
        self._lock = threading.Lock()
        self._handle = None  # the vendor's state or jobs, once opened; None: emulated
        self._opened = False
        self.path_reason = ""

    def _open_vendor(self, probe: Probe) -> tuple[object, str]:
        """Open the vendor handle (it has ``close()``) for the hardware path; return it and
        the reason to report. Raise ``vendor_error`` or CodecUnavailable when it fails."""
        raise NotImplementedError

    def _open(self):
        """The vendor handle, opened on first use; ``None`` means the emulated path."""
        if self._opened:
            return self._handle
        self._opened = True
        probe = type(self).probe()
        if probe.path != CodecPath.HARDWARE:
            self.path_reason = probe.reason
            return None
        try:
            self._handle, self.path_reason = self._open_vendor(probe)
        except (self.vendor_error, CodecUnavailable) as exc:
            self.counters.fallbacks += 1
            self.counters.last_error = str(exc)
            self.path_reason = f"{self.vendor_setup} could not be set up ({exc}); emulated"
            return None
        return self._handle

    def close(self) -> None:
        """Release the vendor handle (also done when the instance is collected)."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
            self._handle = None
            self._opened = False

    @property
    def model(self) -> DeviceModel:
        return device_model(self.device)

    def _ran(
        self, encoding: PageEncoding, path: CodecPath, nbytes: int = 0, pages: int = 0
    ) -> PageEncoding:
        """``encoding`` with the request's path, counted; an emulated request of ``nbytes``
        in ``pages`` also gets its modelled device time."""
        self.counters.count(path)
        encoding.path = path
        if path == CodecPath.EMULATED:
            encoding.device_s = self.model.request_time(nbytes, pages)
        return encoding

    def _expected_path(self) -> CodecPath:
        """The path a request would take. Opens the vendor handle, which caches the probe:
        an all-zero batch never reaches the transform, and a sysfs scan and a dlopen per such
        batch would cost far more than encoding one."""
        return CodecPath.EMULATED if self._open() is None else CodecPath.HARDWARE

    def probe_path(self) -> CodecPath:
        """The path a request would take now: what a request of zero pages only, which
        never reaches the transform, reports (with no device time)."""
        with self._lock:
            return self._expected_path()


def accelerator_probe(lookup, scan, library: str, unit: str, emulated: str) -> Probe:
    """The probe every accelerator plugin gives: hardware only with library *and* device,
    otherwise the emulated path, saying which of the two is missing and what runs instead."""
    devices = (
        f"{scan.count} {unit}(s) ({scan.where})" if scan.count else f"no {unit} ({scan.where})"
    )
    if lookup.handle is None:
        return Probe(True, CodecPath.EMULATED, f"{lookup.reason}; {devices}; {emulated}")
    if scan.count == 0:
        return Probe(
            True, CodecPath.EMULATED, f"{library} {lookup.name} loaded but {devices}; {emulated}"
        )
    return Probe(True, CodecPath.HARDWARE, f"{library} {lookup.name} with {devices}")
