"""How much RAM this machine can still give, asked before a large buffer is allocated.

numpy refuses an impossible size with a traceback, and accepts a merely too large one
(the kernel lends pages lazily), to be killed later when they are touched. Whatever sizes a
buffer from input (a ``--memory`` option, a window a trace announces) checks it against
:func:`available_memory` first. A leaf module (like ``units``), so every package can use it.
"""

from __future__ import annotations

import os


def available_memory() -> int | None:
    """Bytes of RAM that can be allocated without swapping (``MemAvailable``), or ``None``
    where the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def short_of(n_bytes: int) -> int | None:
    """The bytes of RAM this machine has available when they are fewer than ``n_bytes``,
    else ``None`` (also where the system does not say): the caller refuses the buffer in
    its own words, naming both sizes."""
    free = available_memory()
    return free if free is not None and n_bytes > free else None
