"""Our encoders against output of the real implementations (see vectors/README.md).

``vectors/golden.npz`` holds (old, new) page pairs and what QEMU's ``xbzrle_encode_buffer``
and DML's ``dml_ref_create_delta`` wrote for them; both must match byte for byte, including
QEMU's early overflow and DML's result code and partial record at the maximum record size.
"""

from pathlib import Path

import numpy as np
import pytest

from migcodec.codecs.plugins.dsa_delta import apply_delta_records, create_delta_records
from migcodec.codecs.plugins.xbzrle import xbzrle_decode, xbzrle_encode
from tests.codecs.kernel_paths import PATHS, kernels

VECTORS = Path(__file__).with_name("vectors") / "golden.npz"


@pytest.fixture(autouse=True, params=PATHS)
def kernel_path(request):
    """Every test here runs on the C delta kernels and on the numpy ones."""
    with kernels(request.param):
        yield request.param


@pytest.fixture(scope="module")
def golden():
    with np.load(VECTORS) as data:
        return {key: data[key] for key in data.files}


def _split(data: np.ndarray, sizes: np.ndarray) -> list[bytes]:
    ends = np.cumsum(sizes)
    return [data[e - s : e].tobytes() for s, e in zip(sizes, ends, strict=True)]


def test_vectors_cover_the_boundaries(golden):
    labels = list(golden["labels"])
    results = dict(zip(labels, golden["xbzrle_result"], strict=True))
    assert results["xb-ends-changed-fits-exactly"] == 4096
    assert results["xb-ends-unchanged-fits-d-2"] == 4094
    assert results["xb-ends-unchanged-gives-up"] == -1  # 4095 bytes would have fitted
    dml = dict(zip(labels, golden["dml_result"], strict=True))
    assert dml["dsa-40-entries-max-exact"] == 1 and dml["dsa-40-entries-max-one-less"] == 2


def test_xbzrle_matches_qemu_byte_for_byte(golden):
    old, new = golden["pairs"][:, 0], golden["pairs"][:, 1]
    results, lengths, data = xbzrle_encode(old, new)
    np.testing.assert_array_equal(results, golden["xbzrle_result"])
    expected = golden["xbzrle_data"]
    assert data.tobytes() == expected.tobytes()
    ok = golden["xbzrle_result"] > 0
    for label, ours, theirs in zip(
        golden["labels"][ok],
        _split(data, lengths),
        _split(expected, golden["xbzrle_result"][ok]),
        strict=True,
    ):
        assert ours == theirs, label


def test_xbzrle_decodes_qemu_output(golden):
    ok = golden["xbzrle_result"] > 0
    pages = golden["pairs"][ok, 0].copy()
    xbzrle_decode(pages, golden["xbzrle_data"], golden["xbzrle_result"][ok].astype(np.int64))
    np.testing.assert_array_equal(pages, golden["pairs"][ok, 1])


def test_dsa_records_match_dml_reference(golden):
    pairs = golden["pairs"]
    for i, label in enumerate(golden["labels"]):
        max_size = int(golden["max_record_size"][i])
        results, sizes, records = create_delta_records(
            pairs[i : i + 1, 0], pairs[i : i + 1, 1], max_size
        )
        assert int(results[0]) == int(golden["dml_result"][i]), label
        assert int(sizes[0]) == int(golden["dml_size"][i]), label
    # the whole batch at once, grouped by maximum size, gives the same concatenation
    for max_size in np.unique(golden["max_record_size"]):
        rows = np.flatnonzero(golden["max_record_size"] == max_size)
        results, sizes, records = create_delta_records(
            pairs[rows, 0], pairs[rows, 1], int(max_size)
        )
        expected = b"".join(_split(golden["dml_data"], golden["dml_size"])[r] for r in rows)
        assert records.tobytes() == expected
        np.testing.assert_array_equal(results, golden["dml_result"][rows])


def test_applying_dml_records_restores_complete_pages(golden):
    complete = golden["dml_result"] != 2
    pages = golden["pairs"][complete, 0].copy()
    records = b"".join(
        r
        for r, c in zip(_split(golden["dml_data"], golden["dml_size"]), complete, strict=True)
        if c
    )
    apply_delta_records(
        pages, np.frombuffer(records, np.uint8), golden["dml_size"][complete].astype(np.int64)
    )
    np.testing.assert_array_equal(pages, golden["pairs"][complete, 1])
