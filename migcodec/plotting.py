"""matplotlib for ``--plot``, imported on demand: commands run without ``--plot`` never need
it, and a missing install says what to do instead of failing at import time."""

from __future__ import annotations

from types import ModuleType


class PlotUnavailable(RuntimeError):
    """matplotlib cannot be imported; the message says what to install."""


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend: plots go to files, no display is needed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable(f"--plot needs matplotlib ({exc}): pip install matplotlib") from exc
    return plt
