"""Rates and sizes as people write them: ``1Gbit``, ``10Gbps``, ``200MB/s``, ``64MiB``.

One parser for the command line, the engine and the selector's objectives.
"""

from __future__ import annotations

import re

_SIZE = re.compile(r"\s*([0-9.]+)\s*([kKmMgGtT]?)(i?)(.*?)\s*")


def _scaled(text: str, what: str, example: str) -> tuple[float, str]:
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"cannot read {what} {text!r}; write e.g. {example}")
    value, prefix, binary, unit = match.groups()
    power = "kmgt".index(prefix.lower()) + 1 if prefix else 0
    return float(value) * (1024 if binary else 1000) ** power, unit


def parse_rate(text: str | float) -> float:
    """A rate in bytes per second: ``'1Gbit'`` and ``'10Gbps'`` are bits, ``'200MB/s'``
    bytes; a plain number (``2.5e8``) is bytes per second."""
    if isinstance(text, int | float):
        return float(text)
    try:
        return float(text)
    except ValueError:
        pass
    value, unit = _scaled(text, "rate", "1Gbit, 10Gbit, 200MB/s")
    if unit in ("bit", "bit/s", "bps", "b", "b/s"):
        return value / 8
    if unit in ("", "B", "B/s", "Bps"):
        return value
    raise ValueError(f"unknown rate unit {unit!r} in {text!r}; use bit, bps or B/s")


def parse_size(text: str) -> int:
    """A size in bytes: ``'1GiB'``, ``'64MiB'``, ``'512MB'``, ``'4096'``."""
    value, unit = _scaled(text, "size", "64MiB, 1GiB")
    if unit not in ("", "B"):
        raise ValueError(f"unknown size unit {unit!r} in {text!r}; use B, KiB, MiB, GiB")
    return int(value)
