import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcodec.codecs import Batch, DestinationMirror, get_codec
from migcodec.codecs.plugins.lz4 import Lz4Codec
from migcodec.datasets import generate_pages
from migcodec.selector import FeatureExtractor
from migcodec.selector.features import byte_entropy, changed_words, delta_bytes, sample_rows


@given(st.integers(1, 5000), st.integers(1, 64))
def test_sample_rows_are_sorted_unique_and_inside_the_window(n, k):
    rows = sample_rows(n, k)
    assert 1 <= rows.size <= min(n, k)
    assert (np.diff(rows) > 0).all() and rows.min() >= 0 and rows.max() < n


def test_entropy_separates_zero_text_and_random():
    assert byte_entropy(np.zeros((1, 4096), np.uint8)) == 0.0
    text = byte_entropy(generate_pages("text", 2, 0))
    rand = byte_entropy(generate_pages("random", 2, 0))
    assert 3 < text < 5.5 and rand > 7.8


def test_changed_words_counts_8_byte_words():
    old = generate_pages("random", 3, 1)
    new = old.copy()
    new.view(np.uint64)[0, [0, 5, 9]] += np.uint64(1)
    new[2, 100] ^= 0xFF  # one byte: one word
    assert changed_words(new, old).tolist() == [3, 0, 1]


def test_cheap_features_describe_the_window():
    codecs = [get_codec("raw"), get_codec("lz4")]
    fx = FeatureExtractor(codecs)
    pages = generate_pages("memcached", 1024, 0)
    pages[::2] = 0  # half the pages are zero
    previous = pages.copy()
    previous.view(np.uint64)[:, ::64] += np.uint64(1)  # 1/64 of words differ on each page
    f = fx.extract(pages, previous, probe=False)
    bias, zero, entropy, changed, known = f.context
    assert bias == 1 and known == 1
    assert zero == pytest.approx(0.5, abs=0.15)
    assert 0.6 < entropy < 0.85
    assert changed == pytest.approx(1 / 64, rel=0.01)
    assert f.predicted_ratio is None and f.cheap_s > 0
    assert fx.extract(pages, None, probe=False).context[4] == 0


def test_probes_predict_the_window_ratio_of_each_arm():
    codecs = [get_codec("raw"), get_codec("lz4"), get_codec("zstd"), get_codec("dsa-delta")]
    fx = FeatureExtractor(codecs, sample_pages=16)
    pages = np.concatenate([generate_pages("memcached", 768, 3), np.zeros((256, 4096), np.uint8)])
    previous = pages.copy()
    previous.view(np.uint64)[:768, ::32] += np.uint64(1)
    f = fx.extract(pages, previous, probe=True)
    for i, codec in enumerate(codecs[:3]):
        out = sum(
            codec.encode(Batch(pages, [(b, 64)])).stats.output_bytes for b in range(0, 1024, 64)
        )
        assert f.predicted_ratio[i] == pytest.approx(pages.nbytes / out, rel=0.25), codec
    delta = get_codec("dsa-delta")
    held = DestinationMirror.holding(np.arange(1024), previous)
    out = sum(
        delta.encode(Batch(pages, [(b, 64)]), destination=held).stats.output_bytes
        for b in range(0, 1024, 64)
    )
    assert f.predicted_ratio[3] == pytest.approx(pages.nbytes / out, rel=0.25)
    # the delta arm is predicted from the changed words (cheap), never probed by encoding
    assert (f.predicted_rate[:3] > 0).all() and np.isnan(f.predicted_rate[3])
    assert (f.probe_s[1:3] > 0).all() and f.probe_s[3] == 0
    assert f.delta_bytes[3] == pytest.approx(10 * 16 + 2)  # 16 of 512 words changed per page


class _SeenByProbe(Lz4Codec):
    """lz4 that remembers the first word of every page it encodes (a probe's instance is
    built from the config, so the record is kept on the class)."""

    seen: list[int] = []

    def encode_pages(self, pages):
        rows = np.frombuffer(pages, dtype=np.uint8).reshape(-1, 4096)
        type(self).seen.extend(rows[:, :8].copy().view(np.uint64)[:, 0].tolist())
        return super().encode_pages(pages)


def test_a_probe_reads_single_pages_from_as_many_places_as_it_has_pages():
    """A window's 32 sampled pages are single pages spread over it (neighbours were
    written alike: a run of them is about one draw); its 8-page probe takes 8 of them
    spread over the sample, from end to end, not 8 in a row (a quarter of the window)."""
    pages = generate_pages("text", 1024, 0)
    pages[:, :8] = np.arange(1024, dtype=np.uint64)[:, None].view(np.uint8)  # each its index
    fx = FeatureExtractor([_SeenByProbe()])
    _SeenByProbe.seen = []
    f = fx.extract(pages, None, probe=True)
    assert f.sample == 32 and f.probe_pages == 8
    sampled = sample_rows(1024, 32).tolist()
    assert np.diff(sampled).min() > 1  # no two sampled pages are neighbours
    assert sorted(_SeenByProbe.seen) == [sampled[i] for i in (0, 4, 8, 13, 17, 22, 26, 31)]


def test_only_requested_probes_run_and_are_charged():
    codecs = [get_codec("raw"), get_codec("lz4"), get_codec("zstd")]
    fx = FeatureExtractor(codecs)
    pages = generate_pages("text", 256, 0)
    f = fx.extract(pages, None, probe=np.array([False, True, False]))
    assert np.isnan(f.predicted_ratio[[0, 2]]).all() and f.predicted_ratio[1] > 1
    assert f.probe_s[0] == 0 and f.probe_s[2] == 0
    assert f.cost_s("probe") == pytest.approx(f.cheap_s + f.probe_s[1])
    assert f.cost_s("none") == 0


def test_delta_bytes_cap_at_a_raw_page():
    changed = np.array([0, 3, 1000])
    zero = np.array([True, False, False])
    assert delta_bytes(changed, 4096, zero).tolist() == [1, 31, 4097]


def test_the_sample_grows_with_a_large_window_and_is_what_is_charged():
    """32 pages of any window up to 8192 pages, then one per 256 pages up to 512: the
    features of a 100k-page window read 390 pages, however many more are at hand."""
    fx = FeatureExtractor([get_codec("raw"), get_codec("xbzrle")])
    sizes = [1, 31, 32, 8192, 16_384, 100_000, 10**7]
    assert [fx.sample_size(n) for n in sizes] == [1, 31, 32, 32, 64, 390, 512]
    pages = generate_pages("memcached", 1024, 0)
    previous = pages.copy()
    previous.view(np.uint64)[:, ::64] += np.uint64(1)
    assert fx.extract(pages, previous, probe=False).sample == 32
    grown = fx.extract(pages, previous, probe=False, window_pages=100_000)
    assert grown.sample == 390 and grown.pages == 100_000  # single pages, spread
    # a stored sample of a window is read whole when the window asks for more
    assert fx.extract(pages[:200], previous[:200], window_pages=10**6).sample == 200


def test_a_policys_decision_of_which_probes_to_buy_is_charged_with_the_cheap_features():
    """Deciding which probes to buy runs on the thread that reads the features, between the
    scan and the probes: a policy weighing whether features are worth reading must count
    it, so the features charge it."""
    extractor = FeatureExtractor([get_codec("raw"), get_codec("lz4")])
    pages = generate_pages("text", 64, seed=3)

    def slow_decision(features):
        end = time.thread_time() + 0.02
        while time.thread_time() < end:
            pass
        return None  # no probe bought

    plain = extractor.extract(pages, probe=False)
    decided = extractor.extract(pages, probe=slow_decision)
    assert decided.cheap_s >= 0.02 > plain.cheap_s
    assert decided.probe_s is None  # nothing probed: only the decision was charged
