"""Rates and sizes as people write them: ``1Gbit``, ``10Gbps``, ``200MB/s``, ``64MiB``.

One parser for the command line, the engine and the selector's objectives: every command
reads sizes with :func:`parse_size` and rates with :func:`parse_rate` (the command line
through the argparse types of :mod:`migcodec.cli.args`), so ``200MB/s`` means the same to
``migrate`` as to ``trace synth``. A quantity is a non-negative decimal number (``2.5``,
``1e9``), an optional SI (``k M G T``, powers of 1000) or binary (``Ki Mi Gi Ti``, powers of
1024) prefix, and a unit. Errors are :class:`ValueError` with a one-line message that says
what could not be read and how to write it.
"""

from __future__ import annotations

import math
import re
import sys

_QUANTITY = re.compile(
    r"\s*((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)(i?)(.*?)\s*"
)
_SIZE_EXAMPLE = "4096, 64MiB, 1GiB"
_RATE_EXAMPLE = "1Gbit, 10Gbit, 200MB/s"
#: the last letter of a quantity written with a prefix and no unit
_PREFIX_LETTERS = "kKmMgGtTi"


def _scaled(text: str, what: str, example: str) -> tuple[float, str]:
    """``(value with its prefix applied, unit)``; refuses negatives and non-numbers."""
    match = _QUANTITY.fullmatch(text)
    if not match:
        if text.strip().startswith("-"):
            raise ValueError(f"a {what} cannot be negative ({text!r}); write e.g. {example}")
        raise ValueError(f"cannot read {what} {text!r}; write e.g. {example}")
    value, prefix, binary, unit = match.groups()
    if binary and not prefix:  # "5iB": an "i" without a prefix is a unit nobody writes
        unit = binary + unit
        binary = ""
    power = "kmgt".index(prefix.lower()) + 1 if prefix else 0
    scaled = float(value) * (1024 if binary else 1000) ** power
    if not math.isfinite(scaled):
        raise ValueError(f"{what} {text!r} is too large to be a {what}; write e.g. {example}")
    return scaled, unit


def parse_rate(text: str | float) -> float:
    """A rate in bytes per second: ``'1Gbit'`` and ``'10Gbps'`` are bits, ``'200MB/s'``
    (or ``'200MB'``) bytes; a plain number (``2.5e8``) is bytes per second. A prefix
    without a unit (``'1G'``) is refused: people write link speeds in bits and memory
    rates in bytes, and either reading of it is 8x off the other. Never negative, never
    infinite or NaN."""
    if isinstance(text, int | float):
        value = float(text)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"a rate must be a finite number of bytes/s >= 0, not {text!r}")
        return value
    value, unit = _scaled(text, "rate", _RATE_EXAMPLE)
    if unit in ("bit", "bit/s", "bps", "b", "b/s"):
        return value / 8
    number = text.strip()
    if not unit and number[-1:] in _PREFIX_LETTERS:
        # "1G": a link's speed in bits to some and a copy's in bytes to others, 8x apart
        raise ValueError(
            f"rate {text!r} has a prefix but no unit, and bits and bytes are 8x apart: "
            f"write {number}bit for bits per second or {number}B/s for bytes per second"
        )
    if unit in ("", "B", "B/s", "Bps"):
        return value
    raise ValueError(
        f"unknown rate unit {unit!r} in {text!r}; use bit/s (Gbit, Mbit, bps) or bytes/s "
        "(MB/s, GB/s), e.g. 1Gbit or 200MB/s"
    )


def parse_size(text: str) -> int:
    """A size in bytes: ``'1GiB'``, ``'64MiB'``, ``'512MB'``, ``'4096'``; a whole number of
    bytes, never negative."""
    value, unit = _scaled(text, "size", _SIZE_EXAMPLE)
    if unit not in ("", "B"):
        raise ValueError(
            f"unknown size unit {unit!r} in {text!r}; use B, KiB, MiB, GiB, TiB (or kB, MB, "
            "GB, TB), e.g. 64MiB"
        )
    if value != int(value):
        raise ValueError(f"size {text!r} is {value:g} bytes, not a whole number of bytes")
    return int(value)


def format_number(value: float) -> str:
    """A number a user or a file gave, as a message shows it: as written, but an integer
    of more than 15 digits in exponent form (``1e+30``, not 31 digits), and one too large
    for a float by its digits (``format(10**400, ".3g")`` raises ``OverflowError``)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        if abs(value) <= sys.float_info.max:
            return f"{value:.3g}"
        return f"an integer of {len(str(abs(value)))} digits"
    return repr(value)


def counted(n: int, noun: str) -> str:
    """``counted(1, "iteration")`` -> ``'1 iteration'``, ``counted(3, ...)`` -> ``'3
    iterations'``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_size(n_bytes: float) -> str:
    """``268435456`` -> ``'256 MiB'``: binary units, three significant digits."""
    for unit, scale in (
        ("EiB", 2**60),
        ("PiB", 2**50),
        ("TiB", 2**40),
        ("GiB", 2**30),
        ("MiB", 2**20),
        ("KiB", 2**10),
    ):
        if abs(n_bytes) >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes:.0f} B"
