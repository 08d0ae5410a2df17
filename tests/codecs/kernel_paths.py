"""Run a test on either path of a C kernel: the C extension or its fall-back (numpy for the
delta kernels, Python for the DEFLATE walk)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from migcodec.codecs import deflate_scan, delta_kernels

PATHS = ["C", "numpy"]
#: the DEFLATE walk's paths (deflate_scan.py)
WALKS = ["C", "Python"]


@contextlib.contextmanager
def kernels(path: str) -> Iterator[None]:
    """Inside the block the delta codecs run on ``path``; the C path skips the test where
    the extension was not built (saying why)."""
    if path == "numpy":
        with delta_kernels.numpy_kernels():
            yield
        return
    if delta_kernels.native is None:
        pytest.skip(f"delta kernels: {delta_kernels.DELTA_KERNELS}")
    yield


def deflate_walk(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """From here to the end of the test the DEFLATE walk runs on ``path``; the C path skips
    the test where the extension was not built (saying why)."""
    if path == "Python":
        monkeypatch.setattr(deflate_scan, "native", None)
    elif deflate_scan.native is None:
        pytest.skip(f"DEFLATE walk: {deflate_scan.DEFLATE_SCAN}")


def outcome(fn, *args) -> tuple[str, object]:
    """``("ok", result)`` or ``(error type name, message)``: what two paths must agree on."""
    try:
        return "ok", fn(*args)
    except Exception as exc:  # compared, not hidden: a difference fails the caller
        return type(exc).__name__, str(exc)
