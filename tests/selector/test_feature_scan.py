"""The one-pass scan of a sample gives exactly the cheap features the numpy steps gave.

``reference_features.reference_cheap`` is the numpy computation the scan replaced; every
cheap field of ``extract`` is compared with it for equality (floats too), with the C scan
and with the numpy fall-back that runs where the extension is not built.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migcodec.codecs import changes as changes_module
from migcodec.codecs import get_codec
from migcodec.codecs import zero as zero_module
from migcodec.codecs.changes import PageChanges
from migcodec.codecs.delta import DeltaCodec
from migcodec.codecs.plugins.xbzrle import XbzrleCodec
from migcodec.selector import features, scan
from migcodec.selector.arms import DEFAULT_ARMS, DELTA_ARMS
from migcodec.selector.features import FeatureExtractor

from .reference_features import reference_cheap


class RecordDelta(XbzrleCodec):
    """A delta arm priced by DeltaCodec's own estimate (a record per changed word)."""

    name = "record-delta"
    estimate_sizes = formula_describes = DeltaCodec.estimate_sizes
    estimate_formula = DeltaCodec.estimate_formula


_EXTRACTORS: dict = {}


def _extractor(sample_pages: int) -> FeatureExtractor:
    """Extractors over raw, lz4 and every kind of delta estimate (built once: each
    calibrates its probes)."""
    if sample_pages not in _EXTRACTORS:
        codecs = [
            get_codec("raw"),
            get_codec("lz4"),
            get_codec("dsa-delta"),
            get_codec("dsa-delta", max_record_size=100),
            get_codec("xbzrle"),
            RecordDelta(),
        ]
        _EXTRACTORS[sample_pages] = FeatureExtractor(codecs, sample_pages=sample_pages)
    return _EXTRACTORS[sample_pages]


@st.composite
def windows(draw):
    """A window of 0-40 pages of any of several sizes, some zero, against old versions
    that differ by nothing, a few bytes, spans or everything, some of them held."""
    n = draw(st.integers(0, 40))
    page_size = draw(st.sampled_from([8, 64, 72, 136, 512, 4096]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    alphabet = draw(st.sampled_from([2, 16, 256]))
    pages = rng.integers(0, alphabet, (n, page_size), dtype=np.uint8)
    pages[rng.random(n) < draw(st.floats(0, 1))] = 0
    previous = pages.copy()
    share = draw(st.floats(0, 1))
    hit = rng.random((n, page_size)) < share / 8
    hit[rng.random(n) < draw(st.floats(0, 0.5))] = True  # rewritten pages
    previous[hit] ^= rng.integers(1, 256, int(hit.sum()), dtype=np.uint8)
    held = draw(st.sampled_from([None, "some", "none"]))
    held = None if held is None else rng.random(n) < (0.6 if held == "some" else 0.0)
    has_previous = draw(st.booleans())
    return pages, previous if has_previous else None, held


def _assert_same(got, expected: dict) -> None:
    """Every cheap field equal, floats to the bit (nan where the reference has nan), but
    the entropy and the changed words' moments, to rounding (the C scan sums its logs in
    another order, and takes the moments from running sums)."""
    context, want = got.context.tolist(), expected["context"]
    assert context[2] == pytest.approx(want[2], rel=1e-12, abs=1e-15)
    assert context[:2] + context[3:] == want[:2] + want[3:]
    assert got.pages == expected["pages"]
    for name in ("sample", "held_frac", "change_runs", "probe_pages"):
        assert getattr(got, name) == expected.get(name, 0)
    for name in ("words_var", "words_runs_cov"):
        assert getattr(got, name) == pytest.approx(expected.get(name, 0.0), rel=1e-9, abs=1e-9)
    want = expected.get("delta_bytes")
    if want is None:
        assert got.delta_bytes is None
    else:
        np.testing.assert_array_equal(got.delta_bytes, want)  # nan == nan here


def _check_window(window, sample_pages: int, sampled: bool, window_pages) -> None:
    pages, previous, held = window
    fx = _extractor(sample_pages)
    kwargs = {"sampled": sampled, "window_pages": window_pages, "held": held}
    expected = reference_cheap(fx, pages, previous, **kwargs)
    _assert_same(fx.extract(pages, previous, probe=False, **kwargs), expected)


settings_ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings_
@given(windows(), st.sampled_from([1, 3, 8, 32]), st.booleans(), st.sampled_from([None, 5, 4096]))
def test_the_c_scan_gives_the_numpy_features_exactly(window, sample_pages, sampled, window_pages):
    """Tiny windows, windows larger than the sample (sampled rows read in place), windows
    already sampled, zero pages, unheld pages, page sizes of one word up to 4 KiB."""
    assert scan.SAMPLE_SCAN == "C extension"
    _check_window(window, sample_pages, sampled, window_pages)


@pytest.fixture
def without_c(monkeypatch):
    """Every scan as it runs without the C extension."""
    monkeypatch.setattr(scan, "_native_sample_scan", None)
    monkeypatch.setattr(changes_module, "_native_page_changes", None)
    monkeypatch.setattr(zero_module, "_native_zero_pages", None)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(windows(), st.sampled_from([1, 3, 8]), st.booleans())
def test_the_numpy_fall_back_gives_the_same_features(without_c, window, sample_pages, sampled):
    _check_window(window, sample_pages, sampled, None)


def _counts(draw_ints, n: int, page_size: int) -> PageChanges:
    words = draw_ints(0, page_size // 8, n)
    differing = np.minimum(draw_ints(0, page_size, n), 8 * words)
    word_runs = np.minimum(draw_ints(0, page_size // 8, n), words)
    byte_runs = np.minimum(draw_ints(0, page_size, n), differing)
    return PageChanges(
        *(np.asarray(c, dtype=np.int32) for c in (words, differing, word_runs, byte_runs))
    )


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 50),
    st.sampled_from([8, 64, 72, 136, 512, 4096, 65536]),
    st.integers(0, 2**32 - 1),
    st.sampled_from([80, 100, 1000, 4000, 30000]),
)
def test_each_c_formula_sums_what_its_estimate_sizes_returns(n, page_size, seed, record):
    """For any counts, not only those of real pages (the thresholds of every formula are
    crossed: the entry cap, a raw page, XBZRLE's 127-byte gaps)."""
    rng = np.random.default_rng(seed)

    def ints(lo, hi, size):
        edge = rng.integers(lo, hi + 1, size)
        return np.where(rng.random(size) < 0.5, edge, rng.integers(lo, min(hi, 40) + 1, size))

    counts = _counts(ints, n, page_size)
    raw = np.stack(counts, axis=1).astype(np.int32).tobytes()
    for codec in (
        get_codec("dsa-delta", max_record_size=record),
        get_codec("xbzrle"),
        RecordDelta(),
    ):
        (got,) = scan.native_estimate_sums(
            raw, page_size, [features.summed_formula(codec, page_size)]
        )
        assert got == int(codec.estimate_sizes(counts, page_size).sum())


def test_the_built_in_delta_arms_are_summed_in_c():
    """Each names the formula of its own estimate_sizes (formula_describes), so none is
    called per window."""
    from migcodec.selector import parse_arms

    codecs = [a.codec for a in parse_arms(";".join(DEFAULT_ARMS + DELTA_ARMS))]
    fx = FeatureExtractor(codecs)
    plan = fx._plan(4096)
    assert plan.called == () and len(plan.summed) == len(DELTA_ARMS)


def test_a_replaced_estimate_is_called(monkeypatch):
    fx = _extractor(8)
    rng = np.random.default_rng(0)
    pages = rng.integers(0, 256, (16, 4096), dtype=np.uint8)
    previous = pages.copy()
    previous[:, :100] ^= 1
    before = fx.extract(pages, previous, probe=False).delta_bytes
    monkeypatch.setattr(
        XbzrleCodec, "estimate_sizes", lambda self, changes, page_size: changes.words * 0 + 7
    )
    after = fx.extract(pages, previous, probe=False).delta_bytes
    assert after[4] == 7.0 and before[4] != 7.0
    np.testing.assert_array_equal(np.delete(after, 4), np.delete(before, 4))


def test_scan_sample_checks_what_it_reads():
    pages = np.zeros((2, 64), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        scan.scan_sample(pages, np.zeros((1, 64), np.uint8))
    with pytest.raises(IndexError, match="row 2 is not a page of 2"):
        scan.scan_sample(pages, pages, np.array([0, 2]))
    with pytest.raises(ValueError, match="one held flag per page"):
        scan.scan_sample(pages, pages, None, np.ones(3, bool))
    with pytest.raises(ValueError, match="no estimate formula of kind 9"):
        scan.scan_sample(pages, pages, None, None, 7, [(9, 0)])
    with pytest.raises(TypeError, match="formula 0 is not a"):
        scan.native_estimate_sums(b"", 64, [None])
    with pytest.raises(ValueError, match="four int32 per page"):
        scan.native_estimate_sums(b"\0" * 12, 64, [])


def test_scan_sample_reads_strided_and_listed_inputs():
    """Non-contiguous pages, int32 rows and a held list are read as their contiguous,
    int64 and bool equivalents."""
    rng = np.random.default_rng(1)
    wide = rng.integers(0, 256, (6, 128), dtype=np.uint8)
    pages, old = wide[:, :64], wide[:, 64:]
    got = scan.scan_sample(pages, old, np.array([1, 3, 5], np.int32), [1, 0, 1, 1, 0, 1])
    want = scan.scan_sample(
        pages.copy(), old.copy(), np.array([1, 3, 5]), np.array([1, 0, 1, 1, 0, 1], bool)
    )
    assert got == want and got.kept == 2


def test_a_subclass_that_changes_the_estimate_alone_is_called():
    """A subclass's own estimate_sizes, without its formula: the inherited formula is not
    its estimate's any more, so the estimate is called (and its values used)."""

    class Sevens(XbzrleCodec):
        name = "sevens"

        def estimate_sizes(self, changes, page_size):
            return changes.words * 0 + 7

    assert features.summed_formula(Sevens(), 4096) is None
    assert features.summed_formula(XbzrleCodec(), 4096) == (scan.ESTIMATE_KINDS["xbzrle"], 0)


def test_a_scan_extension_built_from_other_sources_is_refused_with_what_to_do(monkeypatch):
    """An extension left from older sources returns fewer fields: read as they are, they
    would land under the wrong names."""
    from migcodec.selector import scan

    if scan._native_sample_scan is None:
        pytest.skip("no C scan built")
    monkeypatch.setattr(
        scan, "_native_sample_scan", lambda *args: (None, 1, None, 0, 0, 0, (), 0.0)
    )
    pages = np.ones((2, 4096), dtype=np.uint8)
    with pytest.raises(
        RuntimeError,
        match=r"^migcodec's page scan extension returned 8 fields, not 10: .*rebuild it",
    ):
        scan.scan_sample(pages, None)
