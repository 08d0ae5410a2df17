"""The calibrated cost model: its curve, its file, and the repeatable tables it gives."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pytest

from migcodec.datasets import Window, generate_pages
from migcodec.selector import parse_arms
from migcodec.selector.costmodel import (
    FEATURES_LABEL,
    KNOTS,
    ArmCost,
    CostModel,
    CostModelError,
    Work,
    _calibration_windows,
    _least_squares_at_least_zero,
    calibrate,
    window_work,
)
from migcodec.selector.evaluation import build_table
from migcodec.selector.objectives import HostCpu, Throughput

#: the probe decisions every calibration times, one entry per policy that buys probes
DECISIONS = {
    f"{policy}'s probe decision{objectives}"
    for policy in ("auto", "predictive")
    for objectives in ("", ", other objectives")
}
MODEL = CostModel(
    4096,
    64,
    {
        "raw": ArmCost(10e-6, 1e-8, [1e-6] * len(KNOTS)),
        "lz4": ArmCost(20e-6, 1e-8, list(np.linspace(1e-6, 5e-6, len(KNOTS)))),
        FEATURES_LABEL: ArmCost(30e-6, 0.0, [0.5e-6] * len(KNOTS)),
    },
)


def test_the_per_page_cost_follows_the_knots_and_stays_flat_beyond_them():
    cost = MODEL.arms["lz4"]
    assert cost.page_cost(KNOTS[0]) == pytest.approx(1e-6)
    assert cost.page_cost(KNOTS[-1]) == pytest.approx(5e-6)
    assert cost.page_cost(0.5) == cost.page_cost(1.0)  # below a ratio of 1: as at 1
    assert cost.page_cost(1e6) == cost.page_cost(KNOTS[-1])
    middle = np.sqrt(KNOTS[1] * KNOTS[2])  # halfway in log ratio
    assert cost.page_cost(middle) == pytest.approx(
        (cost.page_cost(KNOTS[1]) + cost.page_cost(KNOTS[2])) / 2
    )
    work = Work(calls=2, pages=100, out_bytes=100 * 4096 / 4.0, zero_pages=10)
    expected = 2 * 20e-6 + 10 * 1e-8 + 100 * cost.page_cost(4.0)
    assert MODEL.cpu_s("lz4", work) == pytest.approx(expected)


def test_a_model_file_round_trips_and_damage_says_what_to_do(tmp_path):
    path = tmp_path / "model.json"
    MODEL.save(path)
    again = CostModel.load(path)
    assert again.arms == MODEL.arms and again.page_size == 4096
    path.write_text("{not json")
    with pytest.raises(CostModelError, match=r"cannot read cost model .* calibrate again"):
        CostModel.load(path)
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(CostModelError, match="version 99, expected 4; calibrate again"):
        CostModel.load(path)
    with pytest.raises(CostModelError, match="no arm 'zstd level=1'"):
        MODEL.arm("zstd level=1")


def _edited(path, edit) -> None:
    """The saved model at ``path`` with ``edit`` applied to its JSON (checksum kept)."""
    MODEL.save(path)
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, indent=2))


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["arms"]["lz4"]["per_page"].__setitem__(0, 9e-3),  # a coefficient
        lambda d: d.__setitem__("page_size", 4094),
        lambda d: d["machine"].__setitem__("cores", 64),
        lambda d: d["arms"].__setitem__("zstd", d["arms"].pop("lz4")),  # a label
        lambda d: d.pop("created"),
    ],
    ids=["coefficient", "page size", "machine", "label", "dropped key"],
)
def test_an_edited_model_file_is_refused_not_read_as_something_else(tmp_path, edit):
    path = tmp_path / "model.json"
    _edited(path, edit)
    with pytest.raises(
        CostModelError,
        match=r"cannot read cost model .*: its content does not match its checksum .* edited "
        r"or damaged after it was written; calibrate again to replace it",
    ):
        CostModel.load(path)


def test_a_model_file_only_reindented_reads_back_the_same(tmp_path):
    path = tmp_path / "model.json"
    _edited(path, lambda d: None)  # rewritten with the same content
    path.write_text(json.dumps(json.loads(path.read_text()), indent=7))
    assert CostModel.load(path).arms == MODEL.arms


def test_coefficients_no_calibration_writes_are_refused_even_when_sealed(tmp_path):
    bad = CostModel(4096, 64, {"lz4": ArmCost(-1.0, 0.0, [1e-6] * len(KNOTS))})
    path = tmp_path / "model.json"
    bad.save(path)
    with pytest.raises(CostModelError, match="arm 'lz4' has coefficients no calibration writes"):
        CostModel.load(path)
    short = CostModel(4096, 64, {"lz4": ArmCost(1e-6, 0.0, [1e-6] * 3)})
    short.save(path)
    with pytest.raises(CostModelError, match="3 per-page costs for 9 knots"):
        CostModel.load(path)
    # the bad value shown, where a NaN among nine was "9 per-page costs for 9 knots"
    dear = CostModel(4096, 64, {"lz4": ArmCost(1e-6, 0.0, [1e-6] * 8 + [2.0])})
    dear.save(path)
    with pytest.raises(CostModelError, match=r"9 per-page costs for 9 knots \(2\.0 among them\)"):
        CostModel.load(path)
    for per_word, per_run in ((-1e-9, 0.0), (0.0, float("inf"))):
        CostModel(
            4096, 64, {"xbzrle": ArmCost(1e-6, 0.0, [1e-6] * len(KNOTS), 0.0, per_word, per_run)}
        ).save(path)
        with pytest.raises(CostModelError, match=f"per word {per_word!r}, per run {per_run!r}"):
            CostModel.load(path)


def _sealed_with(path, edit) -> None:
    """``path`` holding MODEL, edited and sealed again: as a calibration could have written."""
    from migcodec.hashing import seal, unseal

    MODEL.save(path)
    doc = unseal(json.loads(path.read_text()))
    edit(doc)
    path.write_text(json.dumps(seal(doc)))


@pytest.mark.parametrize(
    ("edit", "shown"),
    [
        # a JSON integer too large for a float: compared, never converted (OverflowError)
        (lambda d: d["arms"]["lz4"].update(per_call=10**400), "per call an integer of 401 digits"),
        (lambda d: d["arms"]["lz4"]["per_page"].__setitem__(0, 10**400), "fit error 0.0"),
        # finite, but more than any codec's seconds: scores of inf and nan
        (lambda d: d["arms"]["lz4"].update(per_call=1e308), "per call 1e+308"),
        (lambda d: d["arms"]["lz4"].update(per_zero_page=2.0), "per zero page 2.0"),
        (lambda d: d["arms"]["lz4"].update(fit_error=float("nan")), "fit error nan"),
        (lambda d: d["arms"]["lz4"].update(fit_error=10**400), "fit error an integer of 401"),
    ],
)
def test_coefficients_too_large_for_any_codec_are_refused_as_damage(tmp_path, edit, shown):
    path = tmp_path / "model.json"
    _sealed_with(path, edit)
    with pytest.raises(CostModelError) as info:
        CostModel.load(path)
    message = str(info.value)
    assert message.startswith(
        f"cannot read cost model {path}: arm 'lz4' has coefficients no calibration writes"
    )
    assert shown in message
    assert message.endswith("seconds must be from 0 to 1); calibrate again to replace it")


def test_a_cached_model_with_a_coefficient_too_large_for_a_float_is_calibrated_again(
    tmp_path, monkeypatch
):
    from migcodec.selector import costmodel

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    arms = parse_arms("raw")
    path = costmodel.default_path(4096, 64)
    path.parent.mkdir(parents=True)
    mine = CostModel(4096, 64, dict(MODEL.arms), costmodel.machine_identity())
    mine.save(path)
    doc = json.loads(path.read_text())
    from migcodec.hashing import seal, unseal

    content = unseal(doc)
    content["arms"]["raw"]["per_call"] = 10**400
    path.write_text(json.dumps(seal(content)))
    model = costmodel.machine_cost_model(arms, repeats=1)
    assert 0 < model.arms["raw"].per_call < 1.0  # measured again, and kept
    assert CostModel.load(path).arms["raw"] == model.arms["raw"]


def test_a_saved_model_of_another_machine_is_calibrated_again(tmp_path, monkeypatch):
    from migcodec.selector import costmodel

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    arms = parse_arms("raw")
    path = costmodel.default_path(4096, 64)
    foreign = CostModel(
        4096, 64, {"raw": ArmCost(1.0, 1.0, [1.0] * len(KNOTS))}, {"cpu": "elsewhere"}
    )
    foreign.save(path)  # at this machine's path, but naming another machine
    model = costmodel.machine_cost_model(arms, repeats=1)
    assert model.machine == costmodel.machine_identity()
    assert model.arms["raw"].per_call < 1.0  # measured here, not the foreign file's
    assert CostModel.load(path).machine == model.machine  # and kept in its place


def test_an_arm_added_to_a_saved_model_keeps_the_features_cost_it_was_saved_with(
    tmp_path, monkeypatch
):
    """Calibrating the arms a saved model lacks fitted the cheap features' cost again too,
    and every later calibrated comparison charged the new fit: one comparison gave other
    numbers after another named a new arm."""
    from migcodec.selector import costmodel

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = costmodel.machine_cost_model(parse_arms("raw"), repeats=1)
    grown = costmodel.machine_cost_model(parse_arms("raw;lz4"), repeats=1)
    assert set(grown.arms) == {"raw", "lz4", FEATURES_LABEL, *DECISIONS}
    assert grown.arms[FEATURES_LABEL] == first.arms[FEATURES_LABEL]
    for label in DECISIONS:  # timed among the arms saved first, as the features were
        assert grown.arms[label] == first.arms[label]
    assert grown.arms["raw"] == first.arms["raw"]
    saved = CostModel.load(costmodel.default_path(4096, 64))
    assert saved.arms[FEATURES_LABEL] == first.arms[FEATURES_LABEL]


@pytest.mark.parametrize("cache_home", ["", "relative/cache"])
def test_an_empty_or_relative_cache_home_is_ignored(monkeypatch, cache_home):
    """Taken, it put the calibration in the working directory (where a directory named
    migcodec then hid the package from ``python -m migcodec``)."""
    from pathlib import Path

    from migcodec.selector import costmodel

    monkeypatch.setenv("XDG_CACHE_HOME", cache_home)
    assert costmodel.default_path(4096, 64).parent == Path.home() / ".cache" / "migcodec"


def test_a_link_where_the_calibration_is_kept_is_replaced_not_written_through(
    tmp_path, monkeypatch
):
    """A link there to a trace's manifest made a calibration replace the manifest."""
    from migcodec.selector import costmodel

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = costmodel.default_path(4096, 64)
    path.parent.mkdir(parents=True)
    victim = tmp_path / "manifest.json"
    victim.write_text("{}")
    path.symlink_to(victim)
    model = costmodel.machine_cost_model(parse_arms("raw"), repeats=1)
    assert victim.read_text() == "{}"
    assert not path.is_symlink() and CostModel.load(path).arms == model.arms
    assert model.note.startswith(f"the calibration saved at {path} was not used (")
    assert model.note.endswith("), and was made again")


@pytest.mark.parametrize("damage", ["no features", "dear decisions"])
def test_a_calibration_that_cannot_price_an_evaluation_is_made_again(tmp_path, monkeypatch, damage):
    """Well formed and sealed, but without the cheap features' entry (which every
    calibration writes), every evaluation failed with advice to calibrate again that
    nothing then did; with a probe decision costing more than a second (each of its
    coefficients within bounds), every table made with it was refused."""
    from migcodec.selector import costmodel

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = costmodel.default_path(4096, 64)
    first = costmodel.machine_cost_model(parse_arms("raw"), repeats=1)
    if damage == "no features":
        del first.arms[FEATURES_LABEL]
        why = "it has no entry 'cheap features'"
    else:
        label = sorted(DECISIONS)[0]
        first.arms[label] = replace(first.arms[label], per_call=0.5, per_page=[0.01] * 9)
        why = "a probe decision of 'auto' among 256 arms costs "
    first.save(path)
    model = costmodel.machine_cost_model(parse_arms("raw"), repeats=1)
    assert model.note.startswith(f"the calibration saved at {path} was not used ({why}")
    assert model.note.endswith("), and was made again")
    assert {"raw", FEATURES_LABEL, *DECISIONS} <= set(model.arms)
    again = costmodel.machine_cost_model(parse_arms("raw"), repeats=1)
    assert again.note is None and again.arms == model.arms  # kept, and used from then on


def test_calibrations_of_other_arms_at_once_keep_each_others_arms(tmp_path, monkeypatch):
    """Each saved the arms it calibrated alone, and the next run of the other calibrated
    its arms again, and gave other numbers."""
    from migcodec.selector import costmodel

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = costmodel.default_path(4096, 64)
    other = costmodel.calibrate(parse_arms("lz4"), 4096, 64, 1)
    calibrate = costmodel.calibrate

    def meanwhile(*args):  # another run saves its calibration while this one calibrates
        mine = calibrate(*args)
        other.save(path)
        return mine

    monkeypatch.setattr(costmodel, "calibrate", meanwhile)
    model = costmodel.machine_cost_model(parse_arms("raw"), repeats=1)
    assert {"raw", "lz4"} <= set(model.arms)
    assert model.arms["lz4"] == other.arms["lz4"]
    assert model.arms[FEATURES_LABEL] == other.arms[FEATURES_LABEL]  # saved first, stands
    assert CostModel.load(path).arms == model.arms and model.note is None


def test_a_calibration_that_cannot_be_kept_says_so(tmp_path, monkeypatch):
    """It was used and dropped without a word, and every run calibrated again, with other
    numbers."""
    from migcodec.selector import costmodel

    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    path = costmodel.default_path(4096, 64)
    model = costmodel.machine_cost_model(parse_arms("raw"), repeats=1)
    assert model.note == (
        f"this calibration could not be kept at {path} (Not a directory): the next run "
        "calibrates again, and its numbers may differ"
    )


def test_calibration_fits_every_arm_and_the_cheap_features():
    arms = parse_arms("raw;lz4")
    model = calibrate(arms, repeats=1)
    assert set(model.arms) == {"raw", "lz4", FEATURES_LABEL, *DECISIONS}
    for cost in model.arms.values():
        assert cost.per_call >= 0 and min(cost.per_page) >= 0
        assert np.isfinite(cost.fit_error)
    assert model.machine["cores"] >= 1


def test_a_modelled_table_replaces_every_time_and_is_the_same_every_time():
    pages = generate_pages("text", 96, 0)
    windows = [
        Window(0, np.arange(96), pages, dirty_pages=960),  # a sample of a 10x larger window
        Window(1, np.arange(32), pages[:32]),
    ]
    arms = parse_arms("raw;lz4")
    table = build_table(windows, arms, repeats=1, calibration=MODEL)
    first, second = table.modelled(MODEL), table.modelled(MODEL)
    np.testing.assert_array_equal(first.cpu_s, second.cpu_s)
    np.testing.assert_array_equal(first.output_bytes, table.output_bytes)
    # window 0 counts at its true size: 960 pages in 15 calls of 64
    raw = MODEL.arms["raw"]
    assert first.cpu_s[0, 0] == pytest.approx(15 * raw.per_call + 960 * raw.page_cost(1.0))
    assert first.input_bytes[0, 0] == 960 * 4096
    cheap = MODEL.arms[FEATURES_LABEL]
    assert first.cheap_s[1] == pytest.approx(cheap.per_call + cheap.per_page[0] * 32)
    assert table.costs() == [MODEL.arms["raw"], MODEL.arms["lz4"]]


def test_a_table_prices_the_probe_decisions_by_its_arms_and_objective():
    """A table charges a probe decision at its cost model's price (per call and per arm,
    under the throughput objective or another), measured or modelled alike, so that its
    replays agree wherever they run; a model without one (built by hand) leaves it to be
    timed."""
    windows = [Window(0, np.arange(32), generate_pages("text", 32, 0))]
    priced = CostModel(
        4096,
        64,
        {
            **MODEL.arms,
            "auto's probe decision": ArmCost(7e-5, 0.0, [1e-6] * len(KNOTS)),
            "auto's probe decision, other objectives": ArmCost(1e-4, 0.0, [2e-6] * len(KNOTS)),
        },
    )
    measured = build_table(windows, parse_arms("raw;lz4"), repeats=1, calibration=priced)
    for table in (measured, measured.modelled(priced)):
        assert table.probe_decision_s("auto", Throughput()) == pytest.approx(7e-5 + 2e-6)
        assert table.probe_decision_s("auto", HostCpu()) == pytest.approx(1e-4 + 4e-6)
        assert table.probe_decision_s("predictive", Throughput()) is None
    assert measured.modelled(MODEL).probe_decision_s("auto", Throughput()) is None


def test_a_delta_codec_is_timed_against_held_versions_and_a_compressor_against_none(
    monkeypatch,
):
    """A delta codec's curve prices its records: the windows it sends through its
    fall-back (nothing held) are its fall-back's cost, left to that arm's curve."""
    import migcodec.selector.costmodel as costmodel

    seen: dict[str, set[tuple[bool, bool]]] = {}

    def timed(codec, pages, previous, batch_pages):
        seen.setdefault(codec.name, set()).add((previous is not None, bool(pages.any())))
        return 1e-3, pages.nbytes // 2

    monkeypatch.setattr(costmodel, "_timed_window", timed)
    monkeypatch.setattr(costmodel, "_fit_features", lambda *a: MODEL.arms[FEATURES_LABEL])
    calibrate(parse_arms("lz4;dsa-delta;xbzrle"), repeats=1)
    # (held version, any non-zero page): zero pages are markers, sent alike by every codec
    # (with or without a held version: no codec sees them)
    assert (False, False) in seen["lz4"] and (False, True) in seen["lz4"]
    assert (True, True) not in seen["lz4"]
    for delta in ("dsa-delta", "xbzrle"):
        assert (False, False) in seen[delta] and (True, True) in seen[delta]
        assert (False, True) not in seen[delta]


def test_a_delta_codecs_calibration_changes_words_and_runs_apart():
    """Pages of every content class changed in words, in single bytes of words and in
    runs of adjacent words: at one share of words changed, the runs of changed bytes
    range over a factor of 4 or more, so a fit can tell a codec that works per word from
    one that works per run."""
    seen: dict[int, list[float]] = {}
    for pages, previous in _calibration_windows(4096, 64):
        if previous is not None and len(pages) > 1:
            work = window_work(pages, 0.0, 64, previous)
            if work.words:  # by share of words changed, a factor of 2 apart
                share = round(float(np.log2(work.words / (work.pages * 512))))
                seen.setdefault(share, []).append(work.runs / work.words)
    spread = {share: max(r) / min(r) for share, r in seen.items() if len(r) >= 8}
    assert len(spread) >= 5 and min(spread.values()) >= 4.0, spread


def test_a_delta_codecs_costs_per_page_word_and_run_are_fitted_and_a_compressors_are_none(
    monkeypatch,
):
    """Timings made of known costs per call, zero page, page, changed word and run give
    those costs back; a compressor, timed against no held version, has none per change."""
    import migcodec.selector.costmodel as costmodel

    def timed(codec, pages, previous, batch_pages):
        work = window_work(pages, 0.0, batch_pages, previous)
        busy = 5e-6 * work.calls + 0.1e-6 * work.zero_pages + 0.3e-6 * work.pages
        if previous is not None:
            busy += 1e-9 * work.words + 12e-9 * work.runs
        return busy, pages.nbytes // 2

    monkeypatch.setattr(costmodel, "_timed_window", timed)
    monkeypatch.setattr(costmodel, "_fit_features", lambda *a: MODEL.arms[FEATURES_LABEL])
    model = calibrate(parse_arms("lz4;xbzrle"), repeats=1)
    xbzrle, lz4 = model.arms["xbzrle"], model.arms["lz4"]
    assert xbzrle.per_call == pytest.approx(5e-6)
    assert xbzrle.per_zero_page == pytest.approx(0.1e-6)
    assert xbzrle.per_page == pytest.approx([0.3e-6] * len(KNOTS))
    assert xbzrle.per_word == pytest.approx(1e-9)
    assert xbzrle.per_run == pytest.approx(12e-9)
    assert xbzrle.fit_error == pytest.approx(0.0, abs=1e-9)
    assert lz4.per_word == lz4.per_run == 0.0
    assert lz4.per_page == pytest.approx([0.3e-6] * len(KNOTS))


def test_no_cost_per_change_comes_out_negative():
    """A codec that takes no longer for more changed words is fitted no negative cost
    per word: the word column is left out and the rest fitted again."""
    counts = np.array([[10.0, 100.0, 5.0], [10.0, 50.0, 20.0], [10.0, 0.0, 0.0], [20, 10, 9]])
    times = counts @ np.array([1.0, 0.0, 2.0]) - 0.01 * counts[:, 1]
    per_page, per_word, per_run = _least_squares_at_least_zero(counts, times)
    assert per_word == 0.0 and per_page > 0 and per_run > 0


def test_each_repeat_of_a_calibration_times_every_arm_before_the_next(monkeypatch):
    """A slow spell of the host then slows one sample of every arm, not every sample of
    one arm: the arms' costs relative to each other are what a policy reads."""
    import migcodec.selector.costmodel as costmodel

    order: list[str] = []

    def timed(codec, pages, previous, batch_pages):
        order.append(codec.name)
        return 1e-3, pages.nbytes // 2

    monkeypatch.setattr(costmodel, "_timed_window", timed)
    monkeypatch.setattr(costmodel, "_fit_features", lambda *a: MODEL.arms[FEATURES_LABEL])
    repeats = []
    calibrate(parse_arms("raw;lz4"), repeats=3, progress=lambda done, total: repeats.append(done))
    assert repeats == [1, 2, 3]
    per_repeat = len(order) // 3
    for r in range(3):
        names = order[r * per_repeat : (r + 1) * per_repeat]
        assert set(names) == {"raw", "lz4"}
        assert names == sorted(names, key=["raw", "lz4"].index)  # every raw, then every lz4


def test_a_modelled_delta_arm_prices_its_records_and_its_fall_backs_pages_apart():
    """Held pages by the delta arm's own curve at its records' ratio and its costs of
    their changed words and runs; pages it does not hold by its fall-back arm's curve at
    that arm's ratio (they went through it)."""
    model = CostModel(
        4096,
        64,
        {
            **MODEL.arms,
            "dsa-delta": ArmCost(
                5e-6,
                1e-8,
                list(np.linspace(0.2e-6, 0.4e-6, len(KNOTS))),
                per_word=1e-9,
                per_run=3e-9,
            ),
        },
    )
    pages = generate_pages("text", 64, 0)
    previous = pages.copy()
    previous.view(np.uint64)[:, ::64] ^= np.uint64(1)  # 8 of 512 words changed per page
    windows = [Window(0, np.arange(64), pages, previous), Window(1, np.arange(64), pages)]
    table = build_table(windows, parse_arms("raw;lz4;dsa-delta"), repeats=1, calibration=model)
    assert table.held_frac.tolist() == [1.0, 0.0]
    cpu = table.modelled(model).cpu_s
    own, lz4 = model.arms["dsa-delta"], model.arms["lz4"]
    records = table.output_bytes[0, 2] - 64 - 12  # every page a record
    changes = 64 * 8 * (1e-9 + 3e-9)  # each changed word a run of one changed byte
    assert cpu[0, 2] == pytest.approx(
        own.per_call + 64 * own.page_cost(64 * 4096 / records) + changes
    )
    through = table.output_bytes[1, 1] - 64 - 12  # every page as lz4 writes it
    assert cpu[1, 2] == pytest.approx(own.per_call + 64 * lz4.page_cost(64 * 4096 / through))


def test_a_calibration_is_kept_per_version_and_per_kernel_build(monkeypatch, tmp_path):
    import migcodec.selector.costmodel as costmodel
    from migcodec.codecs import delta_kernels

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = costmodel.default_path(4096, 64)
    assert built.parent == tmp_path / "migcodec"
    assert costmodel.default_path(4096, 64) == built  # the same code: the same file
    monkeypatch.setattr(delta_kernels, "native", None)
    assert costmodel.default_path(4096, 64) != built  # numpy kernels time differently
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(costmodel, "__version__", "99.0")
    assert costmodel.default_path(4096, 64) != built  # another version: calibrated again


def test_only_a_regular_file_of_a_bounded_size_is_read_as_a_model(tmp_path, monkeypatch):
    from migcodec.selector import costmodel

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    with pytest.raises(CostModelError) as info:
        CostModel.load(fifo)
    assert str(info.value) == (
        f"cost model {fifo} is a named pipe (FIFO), not a regular file; give a cost model JSON file"
    )
    with pytest.raises(CostModelError, match="/dev/zero is a character device, not a regular"):
        CostModel.load("/dev/zero")  # it never ends
    path = tmp_path / "model.json"
    MODEL.save(path)
    monkeypatch.setattr(costmodel, "MAX_COST_MODEL_BYTES", path.stat().st_size - 1)
    with pytest.raises(
        CostModelError, match=r"is larger than [\d.]+ K?i?B; give a cost model JSON file"
    ):
        CostModel.load(path)
    monkeypatch.undo()
    assert costmodel.MAX_COST_MODEL_BYTES == 16 << 20
    assert CostModel.load(path).arms == MODEL.arms


def test_a_model_file_that_gives_a_key_twice_is_refused(tmp_path):
    """Its checksum covers what ``json.loads`` kept (the last of the two), so a key added
    by hand above the real one was read without a word, as half of what the file says."""
    path = tmp_path / "model.json"
    MODEL.save(path)
    text = path.read_text()
    path.write_text(text.replace("{", '{"batch_pages": 32, ', 1))
    with pytest.raises(CostModelError) as info:
        CostModel.load(path)
    assert str(info.value).startswith(
        f"cannot read cost model {path}: its JSON gives the key 'batch_pages' more than once"
    )


def test_json_nested_too_deeply_is_a_damaged_model_file(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CostModelError) as info:
        CostModel.load(path)
    assert str(info.value) == (
        f"cannot read cost model {path}: its JSON is nested too deeply; calibrate again to "
        "replace it"
    )


def test_the_cheap_features_cost_is_fitted_per_page_they_read(monkeypatch):
    """A table prices a window's features by the pages its sample read, so the fit is per
    page read: features that cost 10 us and 0.25 us per page read are modelled so,
    whatever the sizes of the windows the calibration sampled."""
    from migcodec.selector.features import FeatureExtractor

    real = FeatureExtractor.extract

    def timed(self, pages, previous=None, **kwargs):
        features = real(self, pages, previous, **kwargs)
        features.cheap_s = 10e-6 + 0.25e-6 * features.sample
        return features

    monkeypatch.setattr(FeatureExtractor, "extract", timed)
    from migcodec.selector import costmodel

    cheap = costmodel._fit_features(parse_arms("raw"), 4096, 64, 1)
    assert cheap.per_call == pytest.approx(10e-6)
    assert cheap.per_page == pytest.approx([0.25e-6] * len(KNOTS))


def test_the_cheap_features_are_timed_after_every_arm_encoded_their_pages(monkeypatch):
    """As a table measures a window's features: after its arms encoded it (the scan is
    bound by memory, and what the encoders left in the caches changes its time by 2-3x)."""
    from migcodec.selector import costmodel
    from migcodec.selector.features import FeatureExtractor

    events: list[tuple[str, int]] = []
    real = FeatureExtractor.extract

    def encoded(codec, pages, previous, batch_pages):
        events.append((codec.name, len(pages)))
        return 1e-6, pages.nbytes

    def read(self, pages, previous=None, **kwargs):
        events.append(("features", len(pages)))
        return real(self, pages, previous, **kwargs)

    monkeypatch.setattr(costmodel, "_timed_window", encoded)
    monkeypatch.setattr(FeatureExtractor, "extract", read)
    costmodel._fit_features(parse_arms("lz4;xbzrle"), 4096, 64, 1)
    reads = [i for i, (what, _) in enumerate(events) if what == "features"]
    assert len(reads) == 3 * 4  # 2 x 1 + 1 repeats of 4 sizes
    for i in reads:
        n = events[i][1]
        assert events[i - 2 : i] == [("lz4", n), ("xbzrle", n)]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"machine": {"cpu": ("a", "b")}}, r"the model\['machine'\]\['cpu'\] is tuple"),
        ({"machine": {1: "a"}}, r"the model\['machine'\] has the key 1; JSON keeps only string"),
        ({"page_size": np.int64(4096)}, r"the model\['page_size'\] is int64"),
        ({"created": 5}, "its created is 5, not a string"),
    ],
)
def test_a_model_that_would_load_back_different_is_refused_when_saved(tmp_path, change, problem):
    """A model's file is JSON: a tuple would load as a list, an integer key as a string,
    so such a model is refused when saved, naming the part, and nothing is written."""
    from dataclasses import replace

    path = tmp_path / "model.json"
    with pytest.raises(CostModelError, match=f"^cannot save cost model to {path}: {problem}"):
        replace(MODEL, **change).save(path)
    assert not path.exists()


def test_a_calibration_for_the_largest_batches_encodes_batches_it_can_hold():
    """The fit is per call and per page: for batches of 4096 pages (the most a stream
    carries) it is made on batches of at most CALIBRATION_BATCH_PAGES, and kept under the
    batch size asked for. Encoding 4096-page batches, an evaluation with them grew past
    5 GB and was still calibrating after two minutes."""
    import tracemalloc

    from migcodec.selector import parse_arms
    from migcodec.selector.costmodel import CALIBRATION_BATCH_PAGES, calibrate

    tracemalloc.start()
    try:
        model = calibrate(parse_arms("raw;xbzrle"), batch_pages=4096, repeats=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert model.batch_pages == 4096
    assert peak < 512 * CALIBRATION_BATCH_PAGES * 4096  # 338 MB here, for 256-page batches


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        # the parts of a file are named in words, not by the Python call they broke
        (lambda d: d.update(arms=[1.0, 2.0]), "its arms are [1.0, 2.0], not an object of each"),
        (lambda d: d.pop("arms"), "its arms are None, not an object of each arm's"),
        (lambda d: d["arms"].update(lz4="x"), "arm 'lz4' holds a JSON str; a calibration writes"),
        (lambda d: d["arms"]["lz4"].update(extra=1), "arm 'lz4' holds ['extra', 'fit_error',"),
        (lambda d: d["arms"]["lz4"].pop("per_page"), "arm 'lz4' holds ['fit_error', 'per_call',"),
        (lambda d: d["arms"]["lz4"].update(per_page=False), "arm 'lz4' has per-page costs False"),
        (lambda d: d.update(machine=[]), "its machine is [], not an object"),
        # a batch no stream carries: the advice was to pass --batch-pages of 301 digits
        (
            lambda d: d.update(batch_pages=10**300),
            "batch_pages is 1e+300, not a whole number",
        ),
        (lambda d: d.update(batch_pages=4097), "batch_pages is 4097, not a whole number from 1"),
        (lambda d: d.update(page_size=4100), "page_size is 4100, not a multiple of 8 from 8 to"),
    ],
)
def test_a_sealed_model_of_another_shape_is_refused_in_words(tmp_path, edit, said):
    path = tmp_path / "model.json"
    _sealed_with(path, edit)
    with pytest.raises(CostModelError) as info:
        CostModel.load(path)
    assert str(info.value).startswith(f"cannot read cost model {path}: {said}")
