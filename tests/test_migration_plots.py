"""``--plot`` pictures: real PNG files for one migration and for a sweep."""

from pathlib import Path

import pytest

from migcodec.codecs import get_codec
from migcodec.engine import FixedChooser, MigrationConfig, parse_rate, run_loopback
from migcodec.engine.report import MigrationReport
from migcodec.plots.migration import plot_migration, plot_sweep

MiB = 1 << 20
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000  # axes, bars and text, not an empty canvas


@pytest.fixture(scope="module")
def converged() -> MigrationReport:
    config = MigrationConfig(link_rate=parse_rate("1Gbit"), max_time_s=20)
    report = run_loopback(8 * MiB, FixedChooser(get_codec("lz4")), config, 20e6, "mixed")
    assert report.succeeded, report.error
    return report


def test_one_migration_is_drawn_to_a_png(tmp_path, converged):
    out = plot_migration(converged, tmp_path / "one.png")
    assert out == tmp_path / "one.png"
    assert_png(out)


def test_a_run_that_never_started_still_draws(tmp_path):
    report = MigrationReport(codec="lz4", error="destination refused: no lz4")
    assert_png(plot_migration(report, tmp_path / "none.png"))


def test_a_sweep_is_drawn_to_a_png(tmp_path, converged):
    failed = MigrationReport(
        codec="lz4", workload="mixed", dirty_rate=2 * converged.dirty_rate, iterations=4
    )
    failed.error = "did not converge: 4 iterations, 100 pages still dirty"
    assert_png(plot_sweep([converged, failed], converged.dirty_rate, tmp_path / "sweep.png"))


def test_a_plot_that_fails_to_write_leaves_the_picture_there_as_it_was(
    tmp_path, converged, monkeypatch
):
    """A full disk mid-write left a PNG cut short in place of the one there (or an empty
    file): the picture is drawn beside its path and renamed there once whole."""
    import errno

    from matplotlib.figure import Figure

    out = tmp_path / "run.png"
    plot_migration(converged, out)
    before = out.read_bytes()
    draw = Figure.savefig

    def full_disk(self, fname, *args, **kwargs):
        draw(self, fname, *args, **kwargs)
        Path(fname).write_bytes(Path(fname).read_bytes()[:1000])  # the disk filled there
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        plot_migration(converged, out)
    with pytest.raises(OSError, match="No space left on device"):
        plot_migration(converged, tmp_path / "new.png")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.png"]
