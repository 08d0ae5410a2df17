"""Capture dirty-page windows from a live process through /proc (root or ptrace rights)."""

from .layout import PageLayout
from .process import METHODS, ProcessCapture, method_note
from .procfs import (
    CaptureError,
    MappingFilter,
    NotAProcess,
    ProcessExited,
    ProcessReplaced,
    kernel_has_soft_dirty,
)
from .run import CaptureResult, capture_to_trace

__all__ = [
    "METHODS",
    "CaptureError",
    "CaptureResult",
    "MappingFilter",
    "NotAProcess",
    "PageLayout",
    "ProcessCapture",
    "ProcessExited",
    "ProcessReplaced",
    "capture_to_trace",
    "kernel_has_soft_dirty",
    "method_note",
]
