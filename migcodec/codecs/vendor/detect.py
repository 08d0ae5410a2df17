"""Finding vendor libraries and accelerator devices, with overrides for tests and odd setups.

Environment variables (all optional):

``MIGCODEC_QATZIP_LIBRARY`` / ``MIGCODEC_QPL_LIBRARY``
    a path or soname loaded instead of ``libqatzip.so.3`` / ``libqpl.so.1``; an empty value
    disables the library (the plugin then runs its emulated path).
``MIGCODEC_QAT_DEVICES`` / ``MIGCODEC_IAA_DEVICES``
    a device count that replaces the scan of sysfs and ``/dev`` (``0``: no device). Tests
    use it to exercise the hardware path against fake libraries on machines without devices.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from dataclasses import dataclass

from migcodec.files import special_kind


@dataclass(frozen=True)
class LibraryLookup:
    """The outcome of loading one vendor library: the handle, or why there is none."""

    name: str
    handle: ctypes.CDLL | None
    reason: str


def open_library(name: str) -> ctypes.CDLL:
    """``ctypes.CDLL(name)``, refusing a path that is not a regular file with an
    :class:`OSError`, as the loader refuses what it cannot load: the loader's open of a
    named pipe (an environment variable pointed at one) waits for a writer forever."""
    # missing or unreadable: the loader says so in its own words
    kind = special_kind(name) if os.sep in name else None
    if kind is not None:
        raise OSError(f"{name} is {kind}, not a shared library")
    return ctypes.CDLL(name)


_cache: dict[str, LibraryLookup] = {}
_cache_lock = threading.Lock()


def load_library(default: str, env_var: str, install_hint: str) -> LibraryLookup:
    """Load ``default`` (or what ``env_var`` names) once per name; never raises.

    Loading is cached by name because ``dlopen`` of the same file returns the same handle
    anyway, and the probe runs on every ``migcodec codecs``.
    """
    name = os.environ.get(env_var, default)
    if name == "":
        return LibraryLookup(default, None, f"{env_var} is empty, so {default} is not loaded")
    with _cache_lock:
        hit = _cache.get(name)
        if hit is not None:
            return hit
        try:
            lookup = LibraryLookup(name, open_library(name), f"{name} loaded")
        except OSError as exc:
            lookup = LibraryLookup(
                name,
                None,
                f"{name} not loadable ({exc}); {install_hint}, or set {env_var} to its path",
            )
        _cache[name] = lookup
        return lookup


def _override(env_var: str) -> int | None:
    value = os.environ.get(env_var)
    if value is None or value.strip().lower() in ("", "auto"):
        return None
    try:
        count = int(value)
    except ValueError:
        raise ValueError(
            f"{env_var}={value!r} is not a device count; use an integer or 'auto'"
        ) from None
    return max(count, 0)


@dataclass(frozen=True)
class DeviceScan:
    """How many devices were found, and where (or that an override decided)."""

    count: int
    where: str


def qat_devices(root: str = "/") -> DeviceScan:
    """QAT endpoints: in-tree driver sysfs (``/sys/bus/pci/devices/*/qat/``) or the
    out-of-tree driver's ``/dev/qat_*`` nodes. ``root`` lets tests scan a fake tree."""
    forced = _override("MIGCODEC_QAT_DEVICES")
    if forced is not None:
        return DeviceScan(forced, f"MIGCODEC_QAT_DEVICES={forced}")
    sysfs = glob.glob(os.path.join(root, "sys/bus/pci/devices/*/qat"))
    if sysfs:
        return DeviceScan(len(sysfs), "/sys/bus/pci/devices/*/qat")
    nodes = glob.glob(os.path.join(root, "dev/qat_*"))
    if nodes:
        # out-of-tree driver: qat_adf_ctl plus per-device nodes; report at least one device
        return DeviceScan(max(1, len([n for n in nodes if "adf_ctl" not in n])), "/dev/qat_*")
    return DeviceScan(0, "no /sys/bus/pci/devices/*/qat and no /dev/qat_*")


def iaa_work_queues(root: str = "/") -> DeviceScan:
    """IAA shared work queues exposed by the idxd driver as ``/dev/iax/wq*``."""
    forced = _override("MIGCODEC_IAA_DEVICES")
    if forced is not None:
        return DeviceScan(forced, f"MIGCODEC_IAA_DEVICES={forced}")
    queues = glob.glob(os.path.join(root, "dev/iax/wq*"))
    if queues:
        return DeviceScan(len(queues), "/dev/iax/wq*")
    return DeviceScan(0, "no /dev/iax/wq*")
