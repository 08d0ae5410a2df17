"""A fixed fuzzing budget in the default suite: every target of ``targets.py`` on a few
dozen hypothesis-made inputs (a few seconds in all). Long campaigns run the same targets
under atheris: see ``README.md`` beside this file."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.codecs.kernel_paths import PATHS, kernels
from tests.fuzz.targets import TARGETS, available_codecs


@pytest.fixture(autouse=True, params=PATHS)
def kernel_path(request):
    """Every target runs with the C delta kernels and with the numpy ones."""
    with kernels(request.param):
        yield request.param


BUDGET = {"mutated_stream": 120, "truncated_stream": 60, "codec_blob": 150, "forged_trace": 40}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target(name):
    @settings(
        max_examples=BUDGET[name],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(data=st.binary(min_size=8, max_size=512))
    def run(data: bytes) -> None:
        TARGETS[name](data)

    run()


def test_every_registered_codec_is_fuzzed():
    # the decoders the budget reaches: all built-in plugins run here (devices emulated)
    assert set(available_codecs()) >= {
        "dsa-delta", "iaa", "lz4", "qat", "raw", "xbzrle", "zlib-ng", "zstd",
    }  # fmt: skip


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_empty_and_edge_inputs(name):
    for data in (b"", b"\0" * 64, b"\xff" * 64):
        TARGETS[name](data)
