"""The selector drives a real pre-copy migration through the engine's chooser protocol."""

import numpy as np

from migcodec.codecs import Batch
from migcodec.engine import MigrationConfig, parse_rate, run_loopback
from migcodec.selector import Selector, make_objective, parse_policy
from migcodec.selector.chooser import SelectorChooser

MiB = 1 << 20


def test_a_migration_chosen_by_the_predictive_selector_verifies_and_learns():
    link = parse_rate("2Gbit")
    objective = make_objective("throughput", link=link, workers=2)
    selector = Selector(parse_policy("predictive"), ["raw", "lz4", "dsa-delta"], objective)
    chooser = SelectorChooser(selector)
    config = MigrationConfig(workers=2, link_rate=link, max_time_s=30)
    report = run_loopback(8 * MiB, chooser, config, 20e6, "mixed")
    chooser.close()
    assert report.succeeded, report.error
    assert report.verified
    assert selector.windows >= 1 and len(chooser.rewards) == selector.windows
    assert all(r > 0 for r in chooser.rewards)


def _window_whose_first_batch_is_zero():
    memory = np.zeros((64 * 64, 4096), dtype=np.uint8)
    memory[64:] = np.random.default_rng(0).integers(0, 256, memory[64:].shape, dtype=np.uint8)
    return [Batch(memory, [(first, 64)]) for first in range(0, memory.shape[0], 64)]


def test_the_sample_is_spread_over_the_whole_window_not_its_first_batch():
    window = _window_whose_first_batch_is_zero()
    objective = make_objective("throughput", link=parse_rate("1Gbit"), workers=2)
    chooser = SelectorChooser(Selector(parse_policy("predictive"), ["raw", "lz4"], objective))
    _, indices = chooser._sample(window)
    assert indices.size == 16  # 1/64 of 4096 pages
    assert indices.min() < 64 and indices.max() >= 64 * 63  # both ends of the window
    assert len(set((indices // 64).tolist())) == 4  # four runs of four pages
    assert np.array_equal(np.diff(indices.reshape(4, 4), axis=1), np.ones((4, 3)))


def test_random_pages_after_a_zero_batch_go_raw():
    """A first-batch sample (all zero) would see nothing to decide on; the window's sample
    sees random pages, which no compressor shrinks: raw (ties at the link go to the arm
    with the most CPU to spare)."""
    window = _window_whose_first_batch_is_zero()
    objective = make_objective("throughput", link=parse_rate("1Gbit"), workers=2)
    selector = Selector(parse_policy("predictive"), ["raw", "zstd"], objective)
    chooser = SelectorChooser(selector)
    assert chooser.codecs[chooser.choose(window)].name == "raw"
    features = chooser._open.features
    assert features.context[1] < 0.3  # the zero share the sample saw
