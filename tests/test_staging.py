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


def test_a_named_pipe_of_a_leftover_name_is_passed_by_not_opened(tmp_path) -> None:
    """Opened, a named pipe waits for a writer: the next trace waited with it, for ever."""
    import os

    from tests.hang_guard import within

    pipe = tmp_path / ".t.writing-deadbeef"
    os.mkfifo(pipe)
    assert within(30, remove_leftovers, tmp_path / "t", "writing") == []
    staged = within(30, Staged, tmp_path / "t", "writing")
    staged.remove()
    assert [p.name for p in tmp_path.iterdir()] == [pipe.name]


def test_an_entry_another_writer_holds_first_is_given_up_for_a_new_name(
    tmp_path, monkeypatch
) -> None:
    """Between making its entry and locking it, a writer can lose it to another's sweep
    (which locks it, then removes it): a lock refused is that, not a filesystem without
    locks, and the writer stages under another name, held."""
    import errno

    from migcodec import staging

    real = staging.fcntl.flock
    refused = []

    def first_refused(fd: int, operation: int) -> None:
        if not refused:
            refused.append(fd)
            raise BlockingIOError(errno.EWOULDBLOCK, "Resource temporarily unavailable")
        real(fd, operation)

    monkeypatch.setattr(staging.fcntl, "flock", first_refused)
    staged = Staged(tmp_path / "t", "writing")
    monkeypatch.setattr(staging.fcntl, "flock", real)
    lost = [p for p in tmp_path.iterdir() if p != staged.path]
    assert len(lost) == 1 and refused  # the first name, left to the sweep that held it
    assert remove_leftovers(tmp_path / "t", "writing") == lost  # unheld: swept
    assert staged.path.is_dir()  # held: not swept
    staged.remove()


def test_two_directories_are_swapped_in_one_step(tmp_path) -> None:
    from migcodec.staging import exchange

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_bytes(b"a")
    (b / "y").write_bytes(b"b")
    assert exchange(a, b)
    assert [p.name for p in a.iterdir()] == ["y"] and [p.name for p in b.iterdir()] == ["x"]


def test_a_trace_or_a_picture_named_by_a_symbolic_link_is_written_through_it(tmp_path) -> None:
    """The link stays, and what it points to is replaced, as for every file migcodec
    writes (staged beside the link, the new trace took the link's place)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from migcodec.datasets import TraceReader, TraceWriter, Window, generate_pages
    from migcodec.plots import save_figure

    def window(page: int) -> Window:
        return Window(0, np.array([page]), generate_pages("text", 1, 0, 512))

    real, link = tmp_path / "real", tmp_path / "link"
    with TraceWriter(real, memory_pages=8, page_size=512) as w:
        w.write(window(1))
    link.symlink_to(real)
    with TraceWriter(link, memory_pages=8, page_size=512, overwrite=True, staged=True) as w:
        w.write(window(2))
    assert link.is_symlink() and [w.page_indices.tolist() for w in TraceReader(real)] == [[2]]
    picture, named = tmp_path / "p.png", tmp_path / "named.png"
    picture.write_bytes(b"old")
    named.symlink_to(picture)
    save_figure(plt, plt.figure(), named)
    assert named.is_symlink() and picture.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "named.png", "p.png", "real"]
