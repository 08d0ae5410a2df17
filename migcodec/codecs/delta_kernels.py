"""Which delta kernels run: the C extension (``_deltas.c``) or numpy.

XBZRLE's and DSA's page formats are walks along each page; numpy builds them with index
arrays over the whole batch, the C extension in one pass per page without the GIL. Both
write the same bytes and raise the same errors (``tests/codecs/test_delta_kernels.py``),
so the C kernels run wherever they were built and numpy is the fall-back: without a C
compiler at install time, on a big-endian machine (the kernels write lengths in native
order), or when ``MIGCODEC_DELTA_KERNELS=numpy`` asks for it (to compare the two).
:data:`DELTA_KERNELS` says which; the xbzrle and dsa-delta probes repeat it, so
``migcodec codecs`` shows it.

The plugins read :data:`native` at every call, so tests switch paths by setting it to
``None`` (:func:`numpy_kernels`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

from migcodec.extensions import optional_extension

#: environment variable that selects the numpy kernels even where the C ones are built
ENV = "MIGCODEC_DELTA_KERNELS"

native: ModuleType | None
native, DELTA_KERNELS = optional_extension("migcodec.codecs._deltas")
if native is not None and os.environ.get(ENV, "").lower() == "numpy":
    native, DELTA_KERNELS = None, f"numpy ({ENV}=numpy)"
elif native is not None and sys.byteorder != "little":
    native = None
    DELTA_KERNELS = "numpy (the C kernels write little-endian lengths natively only)"


@contextlib.contextmanager
def numpy_kernels() -> Iterator[None]:
    """Run the numpy kernels inside the block (for tests and benchmarks that compare the
    paths). Not thread-safe: it switches the module for every thread."""
    global native
    saved = native
    native = None
    try:
        yield
    finally:
        native = saved
