"""Arms: the choices a selector makes between, each a codec with its config.

An arm is named by its config (``zstd level=1``), so a trace table, a policy config and a
report all name the same thing. Arms are parsed from the command line as ``name`` or
``name:key=value,key=value`` (``zstd:level=3``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from migcodec.codecs import Codec, CodecKind, get_codec
from migcodec.selector.spec import parse_spec

#: CPU arms every installation has
DEFAULT_ARMS = ("raw", "lz4", "zstd:level=1", "zstd:level=3", "zlib-ng:level=1")
#: delta arms, in the default set when installed (on real memory they win most windows at
#: high link speeds); emulated accelerators (qat, iaa) are asked for explicitly, because
#: their rewards are modelled, not measured
DELTA_ARMS = ("dsa-delta", "xbzrle")


class ArmError(ValueError):
    """An arm specification could not be read or built."""


@dataclass(frozen=True)
class Arm:
    """A codec with its config. ``codec`` is built lazily (plugins load on first use)."""

    config: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, spec: str | dict[str, Any] | Codec) -> Arm:
        if isinstance(spec, Codec):
            arm = cls(tuple(sorted(spec.get_config().items())))
            object.__setattr__(arm, "_codec", spec)
            return arm
        if isinstance(spec, str):
            spec = parse_arm(spec)
        if "name" not in spec:
            raise ArmError(f"arm config {spec!r} has no codec 'name'")
        return cls(tuple(sorted(spec.items())))

    def __hash__(self) -> int:
        """The config's hash, taken of its JSON: a config may hold a codec config as a
        value (a delta codec's ``fallback``), which a tuple of its items cannot hash."""
        return hash(json.dumps(self.config, sort_keys=True, default=repr))

    @property
    def name(self) -> str:
        return dict(self.config)["name"]

    @property
    def label(self) -> str:
        """Short human name: ``zstd level=1``."""
        params = " ".join(f"{k}={v}" for k, v in self.config if k != "name")
        return f"{self.name} {params}".strip()

    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    @property
    def codec(self) -> Codec:
        cached = self.__dict__.get("_codec")
        if cached is None:
            cached = get_codec(self.get_config())  # watched as its call (see get_codec)
            object.__setattr__(self, "_codec", cached)
        return cached

    @property
    def kind(self) -> CodecKind:
        return self.codec.kind


def fallback_arms(arms: Sequence[Arm]) -> list[int]:
    """Per arm, the index of the arm whose codec is the one it sends pages through when
    the destination is not known to hold them (a delta arm's fall-back), or -1 where the
    arm has none, no arm is configured like it, or its codec cannot be built here (a table
    replayed where a plugin is missing): a policy predicts those pages by it."""
    return list(_fallback_arms(tuple(arms)))


@functools.lru_cache(maxsize=64)
def _fallback_arms(arms: tuple[Arm, ...]) -> tuple[int, ...]:
    """:func:`fallback_arms`, once per set of arms (a grid replays one table many times,
    and building a codec may probe for hardware)."""
    from migcodec.codecs.delta import DeltaCodec

    codecs: list[Codec | None] = []
    for arm in arms:
        try:
            codecs.append(arm.codec)
        except Exception:  # a plugin missing here, or a config it refuses: no fall-back
            codecs.append(None)
    configs = [None if codec is None else codec.get_config() for codec in codecs]
    found = []
    for codec in codecs:
        target = None
        if isinstance(codec, DeltaCodec):
            try:
                target = get_codec(codec.fallback).get_config()
            except Exception:
                target = None
        found.append(configs.index(target) if target is not None and target in configs else -1)
    return tuple(found)


def parse_arm(text: str) -> dict[str, Any]:
    """``zstd:level=3`` -> ``{"name": "zstd", "level": 3}``; a JSON object is accepted too."""
    config = parse_spec(text, "arm", ArmError, "zstd:level=3")
    if not config["name"]:
        raise ArmError(f"arm {text.strip()!r} names no codec")
    return config


def parse_arms(text: str | None) -> list[Arm]:
    """Arms from ``raw;lz4;zstd:level=1`` (``;`` or whitespace between arms); by default
    (``None``) :data:`DEFAULT_ARMS` plus the installed :data:`DELTA_ARMS`. A text that
    names no arm, or an arm twice, is refused: each arm is a row of a table, named by its
    label, and the same arm twice would be measured twice and reported as two arms."""
    if text is not None:
        specs = [s for s in text.replace(";", " ").split() if s]
        if not specs:
            raise ArmError(
                f"the arm list {text!r} names no codec; give one or more separated by ';', e.g. "
                "raw;lz4;zstd:level=3"
            )
    else:
        from migcodec.codecs import available_codecs

        installed = set(available_codecs())
        specs = [*DEFAULT_ARMS, *(d for d in DELTA_ARMS if d in installed)]
    arms = [Arm.of(s) for s in specs]
    twice = sorted({arm.label for arm in arms if arms.count(arm) > 1})
    if twice:
        raise ArmError(
            f"the arm list {text!r} names {', '.join(repr(t) for t in twice)} more than once; "
            "give each arm once"
        )
    # written apart, configured alike: `lz4` and `lz4:acceleration=1` build one codec
    built: dict[str, Arm] = {}
    for arm in arms:
        same = built.setdefault(_built_config(arm), arm)
        if same is not arm:
            raise ArmError(
                f"the arm list {text!r} names {same.label!r} and {arm.label!r}, one codec "
                "configured alike (a setting at its default); give each arm once"
            )
    return arms


def _built_config(arm: Arm) -> str:
    """The config of the codec ``arm`` builds (its defaults filled in), or its own where it
    builds none here (a plugin this host lacks: a cluster's workers may have it), as JSON:
    a value may be a list or an object, which no tuple of it could be hashed with."""
    try:
        config = arm.codec.get_config()
    except Exception:  # a plugin missing here, or a config it refuses (refused when built)
        config = arm.get_config()
    return json.dumps(config, sort_keys=True, default=repr)
