"""The selector drives a real pre-copy migration through the engine's chooser protocol."""

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
