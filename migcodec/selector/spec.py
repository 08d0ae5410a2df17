"""One parser for the ``name:key=value,...`` specs that name arms and policies on the
command line (``zstd:level=3``, ``d-ucb:gamma=0.95``), or their JSON config."""

from __future__ import annotations

import json
from typing import Any


def parse_spec(text: str, what: str, error: type[Exception], example: str = "") -> dict[str, Any]:
    """``zstd:level=3`` -> ``{"name": "zstd", "level": 3}``; a JSON object is accepted too.

    Values are JSON where they parse as JSON (numbers, booleans), else strings. Failures
    raise ``error`` naming ``what`` was being parsed; ``example`` is shown with them.
    """
    text = text.strip()
    hint = f" (e.g. {example})" if example else ""
    if text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError as exc:  # a JSONDecodeError, or an integer too long to convert
            raise error(f"{what} {_short(text)} is not valid JSON: {exc}") from exc
        except RecursionError:
            raise error(f"{what} {_short(text)} is JSON nested too deeply") from None
    name, _, rest = text.partition(":")
    config: dict[str, Any] = {"name": name.strip()}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise error(f"{what} {text!r}: parameter {item!r} needs key=value{hint}")
        if key.strip() in config:  # the last would win silently
            raise error(f"{what} {_short(text)}: parameter {key.strip()!r} is given twice")
        try:
            config[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            config[key.strip()] = value.strip()
        except (ValueError, RecursionError):  # an integer of thousands of digits, say
            raise error(
                f"{what} {name.strip()!r}: parameter {key.strip()!r} has a value of "
                f"{len(value)} characters that cannot be read; give a number, true, false "
                "or a word"
            ) from None
    return config


def _short(text: str, limit: int = 80) -> str:
    """``text`` quoted, cut to ``limit`` characters so that a message stays one line."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"
