"""migcodec's optional C extensions: ``pip install`` builds them where a C compiler is, and
where none is, numpy (or Python) code does the same work. Every module that uses one says
which path runs (``migcodec codecs`` lists them), so a slow host can be told why."""

from __future__ import annotations

import importlib
from types import ModuleType


def optional_extension(name: str, fallback: str = "numpy") -> tuple[ModuleType | None, str]:
    """The extension module ``name`` and ``"C extension"``, or ``None`` and a sentence
    saying that ``fallback`` runs instead, why, and what to do about it."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # built without a C compiler: the fall-back does the same job
        return None, f"{fallback} (C extension not built: {exc}; reinstall with a C compiler)"
    return module, "C extension"
