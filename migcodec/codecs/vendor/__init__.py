"""ctypes bindings to vendor accelerator libraries (QATzip, Intel QPL) and device detection.

Nothing here imports at module load anything that may be missing: a binding loads its shared
library only when asked, and says which file it tried, why it failed and how to point
migcodec at another copy (``MIGCODEC_QATZIP_LIBRARY``, ``MIGCODEC_QPL_LIBRARY``).
"""
