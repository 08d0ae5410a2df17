"""Every ``--plot`` picture, and matplotlib imported on demand for them.

:mod:`migcodec.plots.migration` draws ``migcodec migrate --plot`` (one migration, or a
dirty-rate sweep); :mod:`migcodec.plots.evaluation` draws ``migcodec evaluate --plot``.
Importing this package or its modules never imports matplotlib: only :func:`pyplot` does,
when a picture is drawn, so commands run without ``--plot`` work without it. matplotlib is
the ``plot`` extra (``pip install 'migcodec[plot]'``), and a missing install raises
:class:`PlotUnavailable` naming that command instead of failing at import time.
"""

from __future__ import annotations

from types import ModuleType

#: what to run when matplotlib is missing
INSTALL_HINT = "pip install 'migcodec[plot]'"


class PlotUnavailable(RuntimeError):
    """matplotlib cannot be imported; the message says what to install."""


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend: plots go to files, no display is needed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable(f"--plot needs matplotlib ({exc}): {INSTALL_HINT}") from exc
    return plt
