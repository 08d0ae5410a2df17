"""What a writer stages beside a path is held while it lives, and only then swept away."""

from __future__ import annotations

from migcodec.staging import Staged, remove_leftovers


def test_only_unheld_entries_of_the_exact_hidden_name_are_removed(tmp_path) -> None:
    out = tmp_path / "plot.png"
    kept = [".plot.png.drawing-0123abc", ".plot.png.drawing-0123abcz", ".plot.png.other-01234567"]
    kept += [".plot.pngx.drawing-01234567", "plot.png.drawing-01234567"]
    for name in kept:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".plot.png.drawing-89abcdef").write_bytes(b"left by a killed writer")
    (tmp_path / ".plot.png.drawing-fedcba98").mkdir()
    (tmp_path / ".plot.png.drawing-fedcba98" / "part").write_bytes(b"x")
    held = Staged(out, "drawing", directory=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, held.path.name])
    assert remove_leftovers(out, "drawing") == []  # the one left is held
    held.release()
    assert remove_leftovers(out, "drawing") == [held.path]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_a_staged_entry_removed_is_released_and_gone(tmp_path) -> None:
    staged = Staged(tmp_path / "t", "writing")
    (staged.path / "chunk").write_bytes(b"x")
    staged.remove()
    staged.remove()  # idempotent
    assert list(tmp_path.iterdir()) == []


def test_on_a_filesystem_without_locks_staging_works_and_sweeps_nothing(
    tmp_path, monkeypatch
) -> None:
    import errno

    import numpy as np

    from migcodec.datasets import TraceReader, TraceWriter, Window, generate_pages
    from migcodec.staging import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    (tmp_path / ".t.writing-89abcdef").mkdir()  # a writer's, or a killed one's: unknown
    with TraceWriter(tmp_path / "t", memory_pages=8, page_size=512, staged=True) as writer:
        writer.write(Window(0, np.array([0]), generate_pages("text", 1, 0, 512)))
    assert len(TraceReader(tmp_path / "t")) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".t.writing-89abcdef", "t"]
