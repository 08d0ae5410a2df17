"""Dirtying workloads: rates, patterns, write styles, phases, determinism, previous."""

from __future__ import annotations

import numpy as np
import pytest

from migcodec.codecs import zero_page_mask
from migcodec.datasets import Phase, Workload, WorkloadSpec, get_workload, workload_names
from migcodec.datasets.pages import GENERATORS, generate_pages


def _spec(**phase: object) -> WorkloadSpec:
    return WorkloadSpec(
        name="t", n_pages=2048, pages_per_window=200, phases=(Phase("p", 6, **phase),)
    )


@pytest.mark.parametrize("pattern", ["uniform", "hotset", "sweep"])
@pytest.mark.parametrize("write", ["whole", "words"])
def test_windows_dirty_the_configured_pages_and_carry_previous(pattern: str, write: str) -> None:
    workload = Workload(_spec(pattern=pattern, write=write, content="random"))
    memory = workload.memory.copy()  # what the destination holds after the first pass
    for i, w in enumerate(workload):
        assert w.index == i and w.phase == "p" and w.n_pages == 200
        assert np.all(np.diff(w.page_indices) > 0)  # ascending, distinct
        assert w.page_indices.dtype == np.int64
        np.testing.assert_array_equal(w.previous, memory[w.page_indices])
        memory[w.page_indices] = w.pages
        changed = (w.pages.view("<u8") != w.previous.view("<u8")).sum(axis=1)
        if write == "words":
            assert changed.min() >= 1 and changed.max() <= 4
        else:
            assert changed.mean() > 500  # random rewrites change almost every word
    np.testing.assert_array_equal(memory, workload.memory)


def test_same_seed_same_windows_other_seed_other_windows() -> None:
    spec = get_workload("phases", n_pages=1024, n_windows=8)
    a, b = list(Workload(spec)), list(Workload(spec))
    c = list(Workload(get_workload("phases", n_pages=1024, n_windows=8, seed=1)))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.page_indices, y.page_indices)
        np.testing.assert_array_equal(x.pages, y.pages)
    assert any(not np.array_equal(x.pages, z.pages) for x, z in zip(a, c, strict=True))


def test_hotset_concentrates_writes_and_sweep_walks_memory() -> None:
    hot = Workload(_spec(pattern="hotset", zipf_s=1.2))
    counts = np.zeros(2048)
    for w in hot:
        counts[w.page_indices] += 1
    assert np.sort(counts)[-100:].mean() > 5 * counts.mean()  # a hot set exists
    sweep = list(Workload(_spec(pattern="sweep")))
    assert sweep[0].page_indices[0] == 0 and sweep[1].page_indices[0] == 200
    assert sweep[-1].page_indices.tolist() == sorted((np.arange(1000, 1200) % 2048).tolist())


def test_dirty_rate_in_bytes_per_second() -> None:
    spec = WorkloadSpec(
        name="r",
        n_pages=4096,
        pages_per_window=None,
        dirty_bytes_per_s=40 * 2**20,
        window_s=0.05,
        phases=(Phase("p", 2),),
    )
    assert [w.n_pages for w in Workload(spec)] == [512, 512]  # 2 MiB per 50 ms window


def test_the_phases_preset_changes_character_phase_by_phase() -> None:
    windows = list(Workload(get_workload("phases", n_pages=2048, n_windows=8)))
    assert [w.phase for w in windows] == [
        p for p in ("boot", "memcached", "counters", "random") for _ in (0, 1)
    ]
    by = {w.phase: w for w in windows}
    assert zero_page_mask(by["boot"].pages).mean() > 0.6
    changed = (by["counters"].pages != by["counters"].previous).mean()
    assert changed < 0.01  # a few words per page
    assert zero_page_mask(by["random"].pages).mean() == 0


def test_every_preset_runs_and_scales() -> None:
    for name in workload_names():
        spec = get_workload(name, n_pages=256, n_windows=3)
        assert spec.n_windows == 3
        assert sum(1 for _ in Workload(spec)) == 3


def test_bad_specs_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="pattern"):
        Phase("x", 1, pattern="zigzag")
    with pytest.raises(ValueError, match="unknown content"):
        Phase("x", 1, content={"zero": 0.5, "nope": 0.5})
    with pytest.raises(ValueError, match="unknown workload"):
        get_workload("nope")


@pytest.mark.parametrize(
    ("option", "value", "rule"),
    [
        ("n_pages", 0, "a whole number of at least 1"),  # was a ZeroDivisionError
        ("n_pages", 1.5, "a whole number of at least 1"),
        ("n_windows", True, "a whole number of at least 1"),
        ("pages_per_window", -3, "a whole number of at least 1"),  # was taken as 1
        ("seed", "x", "a whole number of at least 0"),
        ("dirty_bytes_per_s", float("nan"), "a positive finite number"),  # "cannot convert"
        ("window_s", -1.0, "a positive finite number"),  # was taken
    ],
)
def test_a_preset_resized_by_no_usable_number_is_refused_naming_it(option, value, rule) -> None:
    with pytest.raises(ValueError) as info:
        get_workload("phases", **{option: value})
    assert str(info.value) == f"{option} must be {rule}, got {value!r}"


def test_open_windows_resolves_traces_and_workload_names(tmp_path) -> None:
    from migcodec.datasets import TraceReader, TraceWriter, open_windows

    spec = get_workload("numeric", n_pages=128, n_windows=3)
    assert len(list(open_windows(spec))) == 3
    named = list(open_windows("numeric", n_pages=128, n_windows=3))
    with TraceWriter(tmp_path, memory_pages=128) as writer:
        writer.write_all(named)
    reader = open_windows(tmp_path)
    assert isinstance(reader, TraceReader) and len(reader) == 3
    with pytest.raises(ValueError, match="neither a trace directory nor a workload"):
        open_windows(tmp_path / "missing")


def test_a_directory_named_like_a_workload_is_read_as_a_trace_never_as_the_workload(
    tmp_path, monkeypatch
) -> None:
    """A trace directory called ``memcached`` whose manifest is gone (or a named pipe, or a
    directory) was read as the built-in workload, without a word, by ``open_windows`` and
    by ``evaluate``'s ``read_trace``."""
    import os

    from migcodec.datasets import open_windows
    from migcodec.datasets.trace import TraceCorrupt, TraceNotFound
    from migcodec.selector.evaluation import read_trace

    monkeypatch.chdir(tmp_path)
    (tmp_path / "memcached").mkdir()
    for read in (open_windows, read_trace):
        with pytest.raises(TraceNotFound, match=r"memcached is not a trace: manifest\.json is"):
            read("memcached")
    os.mkfifo(tmp_path / "memcached" / "manifest.json")
    for read in (open_windows, read_trace):
        with pytest.raises(TraceCorrupt, match=r"manifest.json is a named pipe \(FIFO\)"):
            read("memcached")
    assert len(list(open_windows("zero", n_pages=8, n_windows=2))) == 2  # no such directory


@pytest.mark.parametrize("workload", sorted(GENERATORS))
@pytest.mark.parametrize("page_size", [512, 4096, 2 << 20])
def test_every_workload_makes_pages_of_any_page_size(workload: str, page_size: int) -> None:
    """2 MiB pages (a guest backed by huge pages) included: text pages are slices of a run
    of words, which once held fewer bytes than such a page."""
    pages = generate_pages(workload, 3, seed=1, page_size=page_size)
    assert pages.shape == (3, page_size) and pages.dtype == np.uint8
    assert np.array_equal(pages, generate_pages(workload, 3, seed=1, page_size=page_size))
