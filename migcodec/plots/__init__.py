"""Every ``--plot`` picture, and matplotlib imported on demand for them.

:mod:`migcodec.plots.migration` draws ``migcodec migrate --plot`` (one migration, or a
dirty-rate sweep); :mod:`migcodec.plots.evaluation` draws ``migcodec evaluate --plot``.
Importing this package or its modules never imports matplotlib: only :func:`pyplot` does,
when a picture is drawn, so commands run without ``--plot`` work without it. matplotlib is
the ``plot`` extra (``pip install 'migcodec[plot]'``), and a missing install raises
:class:`PlotUnavailable` naming that command instead of failing at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from migcodec.staging import Staged, through_link

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


#: formats matplotlib lists that need a program besides it (pgf: LaTeX), found missing only
#: once the figure is drawn
_NEEDS_PROGRAMS = {"pgf"}


def plot_format(path: str | os.PathLike) -> str:
    """The format a plot is written to ``path`` in: its suffix's, or ``png`` for a path
    without one (passed to ``savefig``, so the file is ``path`` itself, not ``path.png``).
    Raises :class:`ValueError` naming the formats for a suffix matplotlib cannot write
    alone: checked before any work, not after it, when the picture is drawn."""
    suffix = Path(path).suffix[1:].lower()
    if not suffix:
        return "png"
    from matplotlib.backend_bases import FigureCanvasBase

    formats = sorted(set(FigureCanvasBase.get_supported_filetypes()) - _NEEDS_PROGRAMS)
    if suffix not in formats:
        raise ValueError(
            f"{path}: cannot draw a .{suffix} file; name a .png file (or one of "
            f"{', '.join('.' + f for f in formats if f != 'png')})"
        )
    return suffix


def save_figure(plt: ModuleType, fig: object, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` (in :func:`plot_format`'s format) and close it: drawn into
    a hidden file beside ``path`` and renamed there once whole, so a write that fails (a
    full disk) leaves neither a truncated picture nor an empty file, and a picture there
    before as it was (``--plot`` had left a 20 KB PNG cut at the disk's end)."""
    out = Path(path)
    try:
        drawn_as = plot_format(out)  # the name given says the format
        out = through_link(out)
        drawing = Staged(out, "drawing", directory=False)
        try:
            fig.savefig(drawing.path, dpi=110, format=drawn_as)
            os.replace(drawing.path, out)
        except BaseException:
            drawing.remove()
            raise
        drawing.release()
    finally:
        plt.close(fig)
    return out
