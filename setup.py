"""Packaging for migcodec.

Built-in codecs are registered through the same ``migcodec.codecs`` entry points that third
parties use, so the registry has exactly one discovery path.
"""

from pathlib import Path

from setuptools import Extension, find_packages, setup

BUILTIN_CODECS = [
    "raw = migcodec.codecs.plugins.raw:RawCodec",
    "zlib-ng = migcodec.codecs.plugins.zlib_ng:ZlibNgCodec",
    "lz4 = migcodec.codecs.plugins.lz4:Lz4Codec",
    "zstd = migcodec.codecs.plugins.zstd:ZstdCodec",
    "qat = migcodec.codecs.plugins.qat:QatCodec",
    "iaa = migcodec.codecs.plugins.iaa:IaaCodec",
    "dsa-delta = migcodec.codecs.plugins.dsa_delta:DsaDeltaCodec",
    "xbzrle = migcodec.codecs.plugins.xbzrle:XbzrleCodec",
]

# what both extensions read pages with (one zero-page rule for both)
PAGE_WORDS = "migcodec/codecs/_page_words.h"

# Zero-page detection and page-change counts in C (migcodec/codecs/zero.py and changes.py
# say why). Optional: without a C compiler the build still succeeds, numpy does the same
# work, and `migcodec codecs` reports which one runs.
PAGE_SCAN = Extension(
    "migcodec.codecs._pagescan",
    ["migcodec/codecs/_pagescan.c"],
    depends=[PAGE_WORDS],
    extra_compile_args=["-O3"],
    libraries=["m"],  # log2, for the sample's byte entropy
    optional=True,
)

# XBZRLE and DSA delta kernels in C (plugins/xbzrle.py and dsa_delta.py keep the numpy
# versions as the fall-back, and their probes report which one runs). Optional likewise.
DELTA_KERNELS = Extension(
    "migcodec.codecs._deltas",
    ["migcodec/codecs/_deltas.c"],
    depends=[PAGE_WORDS],
    extra_compile_args=["-O3"],
    optional=True,
)

# The iaa codec's check of a page's DEFLATE matches against the device's history, in C
# (deflate_scan.py keeps the Python walk as the fall-back; `migcodec codecs` reports which
# one runs). Optional likewise.
DEFLATE_SCAN = Extension(
    "migcodec.codecs._deflatescan",
    ["migcodec/codecs/_deflatescan.c"],
    extra_compile_args=["-O3"],
    optional=True,
)

# The selector's Kalman filter update in C (selector/policies/kalman.py keeps the numpy
# version as the fall-back, and `migcodec codecs` reports which one runs). Optional
# likewise. Without contraction: both paths must give the same bits.
RATIO_FILTER = Extension(
    "migcodec.selector._filters",
    ["migcodec/selector/_filters.c"],
    extra_compile_args=["-O3", "-ffp-contract=off"],
    libraries=["m"],
    optional=True,
)

# auto's probe valuation in C (selector/policies/auto/probes.py keeps the Python loop as the
# fall-back, and `migcodec codecs` reports which one runs). Optional likewise, and without
# contraction for the same reason.
PROBE_VALUES = Extension(
    "migcodec.selector._probes",
    ["migcodec/selector/_probes.c"],
    extra_compile_args=["-O3", "-ffp-contract=off"],
    libraries=["m"],
    optional=True,
)

# `migcodec evaluate --scheduler` runs on a Dask cluster and reads traces through fsspec
# URLs; both are imported only when asked for, so they are an extra (the tests use them)
DISTRIBUTED = ["dask[distributed]>=2024.1", "fsspec>=2023.1"]
# `--plot` (migrate and evaluate) draws with matplotlib, imported only when a picture is
# drawn (migcodec/plots), so it is an extra too; without it `--plot` says to install this one
PLOT = ["matplotlib>=3.6"]
# what the test suite imports: it draws plots and runs evaluations on a local Dask cluster
TEST = ["pytest>=7", "hypothesis>=6.80", *DISTRIBUTED, *PLOT]

setup(
    name="migcodec",
    version="0.1.0",
    description="Codecs, adaptive codec selection and wire format for live migration of memory",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["migcodec", "migcodec.*"]),
    ext_modules=[PAGE_SCAN, DELTA_KERNELS, DEFLATE_SCAN, RATIO_FILTER, PROBE_VALUES],
    install_requires=[
        "numpy>=1.24",
        "stevedore>=5.6",  # DriverManager takes on_missing_entrypoints_callback from 5.6
        "zlib-ng>=0.4",
        "lz4>=4.0",
        "zstandard>=0.21",
        "scikit-learn>=1.3",
        "xxhash>=3.0",
        "tqdm>=4.60",
    ],
    extras_require={
        # evaluate --scheduler and traces named by URLs; bokeh serves Dask's dashboard
        "distributed": [*DISTRIBUTED, "bokeh>=3.1"],
        "plot": PLOT,
        "test": TEST,
        # the tests and the linter and formatter CI runs (`ruff check .`, `ruff format --check .`)
        "dev": [*TEST, "ruff>=0.5"],
    },
    entry_points={
        "console_scripts": ["migcodec = migcodec.command:main"],
        "migcodec.codecs": BUILTIN_CODECS,
    },
)
