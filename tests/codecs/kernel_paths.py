"""Run a test on either delta-kernel path: the C extension or the numpy fall-back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from migcodec.codecs import delta_kernels

PATHS = ["C", "numpy"]


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


def outcome(fn, *args) -> tuple[str, object]:
    """``("ok", result)`` or ``(error type name, message)``: what two paths must agree on."""
    try:
        return "ok", fn(*args)
    except Exception as exc:  # compared, not hidden: a difference fails the caller
        return type(exc).__name__, str(exc)
