"""What RAM a buffer may take: the machine's, or less where a memory control group (a
container) limits this process."""

from __future__ import annotations

from pathlib import Path

import pytest

from migcodec import ram

GIB, MIB = 1 << 30, 1 << 20


def _group(root: Path, *files: tuple[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files:
        (root / name).write_text(text)


def _v2(tmp_path: Path, path: str = "/box") -> str:
    proc = tmp_path / "cgroup"
    proc.write_text(f"0::{path}\n")
    return str(proc)


def test_a_v2_group_s_room_is_its_limit_less_its_use_without_reclaimable_cache(tmp_path):
    _group(
        tmp_path / "fs" / "box",
        ("memory.max", f"{GIB}\n"),
        ("memory.current", f"{800 * MIB}\n"),
        ("memory.stat", f"anon 500\ninactive_file {300 * MIB}\nfile 7\n"),
    )
    room = ram.cgroup_room(_v2(tmp_path), str(tmp_path / "fs"))
    assert room == GIB - 500 * MIB


def test_a_v2_group_without_a_limit_leaves_the_tightest_group_above_it(tmp_path):
    fs = tmp_path / "fs"
    _group(fs, ("memory.max", "max\n"))  # the root: no limit
    _group(fs / "a", ("memory.max", f"{2 * GIB}\n"), ("memory.current", f"{GIB}\n"))
    _group(fs / "a" / "b", ("memory.max", "max\n"), ("memory.current", "0\n"))
    assert ram.cgroup_room(_v2(tmp_path, "/a/b"), str(fs)) == GIB
    _group(fs / "a", ("memory.max", "max\n"))
    assert ram.cgroup_room(_v2(tmp_path, "/a/b"), str(fs)) is None


def test_a_v1_group_s_room_is_its_hierarchical_limit_less_its_use(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("5:devices:/\n4:memory:/docker/abc\n0::/\n")
    _group(
        tmp_path / "fs" / "memory" / "docker" / "abc",
        ("memory.limit_in_bytes", "9223372036854771712\n"),  # no limit of its own
        ("memory.usage_in_bytes", f"{700 * MIB}\n"),
        ("memory.stat", f"hierarchical_memory_limit {GIB}\ntotal_inactive_file {200 * MIB}\n"),
    )
    assert ram.cgroup_room(str(proc), str(tmp_path / "fs")) == GIB - 500 * MIB


def test_a_group_over_its_limit_has_no_room_and_one_without_files_says_nothing(tmp_path):
    _group(
        tmp_path / "fs" / "box",
        ("memory.max", f"{GIB}\n"),
        ("memory.current", f"{2 * GIB}\n"),
    )
    assert ram.cgroup_room(_v2(tmp_path), str(tmp_path / "fs")) == 0
    assert ram.cgroup_room(_v2(tmp_path, "/gone"), str(tmp_path / "fs")) is None
    assert ram.cgroup_room(str(tmp_path / "missing"), str(tmp_path / "fs")) is None


@pytest.mark.parametrize(("limit", "expected"), [(GIB, GIB), (None, "machine")])
def test_available_memory_is_the_machine_s_or_the_group_s_if_less(
    tmp_path, monkeypatch, limit, expected
):
    """A command in a container is killed by its group's limit with the machine's memory
    free: the checks before each large buffer read both."""
    _group(tmp_path / "fs" / "box", ("memory.max", "max\n" if limit is None else f"{limit}\n"))
    monkeypatch.setattr(ram, "PROC_CGROUP", _v2(tmp_path))
    monkeypatch.setattr(ram, "CGROUP_ROOT", str(tmp_path / "fs"))
    monkeypatch.setattr(ram, "_meminfo_available", lambda: 64 * GIB)
    assert ram.available_memory() == (64 * GIB if expected == "machine" else expected)
    assert ram.short_of(2 * GIB) == (None if expected == "machine" else GIB)
