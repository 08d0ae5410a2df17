"""What a trace's JSON may hold: the manifest and each record's metadata, as field tables.

A trace is a file from anywhere: every field the reader uses is checked here, in one place,
against a declared type and range, before it is used. A field that fails is named in the
error (``field 'phases[2].first' must be ...``), so a damaged or forged trace is a
:class:`~migcodec.datasets.trace.format.TraceCorrupt` and never a ``KeyError``,
``TypeError`` or a huge allocation further on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from migcodec.units import format_number

#: the largest page a trace may hold (the wire's bound: 2 MiB)
MAX_PAGE_SIZE = 1 << 21
#: the largest guest a trace may describe (the wire's bound, in pages)
MAX_MEMORY_PAGES = 1 << 40


@dataclass(frozen=True)
class Field:
    """One field: its JSON types, whether it must be present, and a range rule.

    ``kinds`` are Python types as ``json`` loads them (``int`` excludes ``bool``; ``float``
    admits ``int``); ``rule`` says in words what ``check`` requires. ``fields`` describes a
    nested object, ``items`` the objects of a list.
    """

    kinds: tuple[type, ...]
    required: bool = True
    check: Callable[[Any], bool] | None = None
    rule: str = ""
    fields: Mapping[str, Field] | None = None
    items: Mapping[str, Field] | None = None


def _count(limit: int = 1 << 63) -> Field:
    return Field((int,), check=lambda v: 0 <= v <= limit, rule=f"an integer from 0 to {limit}")


def _finite_non_negative(v: float) -> bool:
    return math.isfinite(v) and v >= 0


TEXT = Field((str,))
OPTIONAL_TEXT = Field((str, type(None)), required=False)

MANIFEST_SCHEMA: dict[str, Field] = {
    "format": TEXT,
    "version": Field((int,)),
    "page_size": Field(
        (int,),
        check=lambda v: 8 <= v <= MAX_PAGE_SIZE and v % 8 == 0,
        rule=f"a multiple of 8 from 8 to {MAX_PAGE_SIZE}",
    ),
    "memory_pages": _count(MAX_MEMORY_PAGES),
    "window_s": Field(
        (float, type(None)),
        required=False,
        check=_finite_non_negative,
        rule="a finite number of seconds, at least 0",
    ),
    "source": TEXT,
    "command": TEXT,
    "created": TEXT,
    "codec": Field((dict,), fields={"name": TEXT}),
    "chunk_bytes": Field((int,), required=False, check=lambda v: v > 0, rule="positive"),
    "complete": Field((bool,)),
    "end_reason": OPTIONAL_TEXT,
    "windows": _count(),
    "phases": Field(
        (list,),
        items={"name": Field((str, type(None))), "first": _count(), "windows": _count()},
    ),
    "totals": Field(
        (dict,),
        fields={
            "pages": _count(),
            "raw_bytes": _count(),
            "stored_bytes": _count(),
            "previous_windows": _count(),
        },
    ),
    "meta": Field((dict,), required=False),
    # from version 5, where the reader requires it: seeds the record headers' checksums
    "trace_id": Field(
        (int,), required=False, check=lambda v: 0 <= v < 1 << 64, rule="a 64-bit unsigned integer"
    ),
}

#: the JSON object at the start of every record's body
RECORD_META_SCHEMA: dict[str, Field] = {
    "phase": Field((str, type(None)), required=False),
    "duration_s": Field(
        (float, type(None)),
        required=False,
        check=lambda v: math.isnan(v) or _finite_non_negative(v),
        rule="a number of seconds, at least 0",
    ),
    "meta": Field((dict, type(None)), required=False),
    "dirty_pages": Field((int,), required=False, check=lambda v: v >= 0, rule="at least 0"),
}

_KIND_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    dict: "an object",
    list: "a list",
    type(None): "null",
}


def check(value: object, schema: Mapping[str, Field], where: str = "") -> str | None:
    """The first problem of the JSON object ``value`` against ``schema`` (``"field 'x' is
    ..."``), or ``None`` when it conforms. Fields the schema does not name are ignored."""
    if not isinstance(value, dict):
        return f"{where or 'the document'} is {_kind_of(value)}, not an object"
    for name, spec in schema.items():
        path = f"{where}.{name}" if where else name
        if name not in value:
            if spec.required:
                return f"field {path!r} is missing"
            continue
        problem = _check_field(value[name], spec, path)
        if problem is not None:
            return problem
    return None


def _check_field(value: object, spec: Field, path: str) -> str | None:
    if not _is_kind(value, spec.kinds):
        wanted = " or ".join(_KIND_NAMES[k] for k in spec.kinds)
        return f"field {path!r} is {_kind_of(value)}, not {wanted}"
    if value is None:
        return None
    if spec.check is not None and not _passes(spec.check, value):
        shown = format_number(value) if isinstance(value, int | float) else repr(value)
        return f"field {path!r} is {shown}, not {spec.rule}"
    if spec.fields is not None:
        return check(value, spec.fields, path)
    if spec.items is not None:
        for i, item in enumerate(value):
            problem = check(item, spec.items, f"{path}[{i}]")
            if problem is not None:
                return problem
    return None


def _passes(rule: Callable[[Any], bool], value: object) -> bool:
    """``rule(value)``, false where the rule cannot compare it: JSON's integers have no
    bound, and one past a float's range (``10**400`` as a number of seconds) made the
    float checks raise ``OverflowError``, a traceback where the reader names the field."""
    try:
        return bool(rule(value))
    except OverflowError:
        return False


def _is_kind(value: object, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, kinds)


def _kind_of(value: object) -> str:
    if isinstance(value, bool):
        return _KIND_NAMES[bool]
    return _KIND_NAMES.get(type(value), type(value).__name__)
