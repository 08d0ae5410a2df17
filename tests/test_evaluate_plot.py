"""``migcodec evaluate --plot``: the figure says what it draws, and ``trace info`` and the
progress of a long evaluation read as text for people."""

from __future__ import annotations

import io
import re
import sys

import pytest

from migcodec.cli import main
from migcodec.plots import evaluation as evaluation_plot
from migcodec.plots.evaluation import objective_text, short_label

SHORT_RUN = [
    "evaluate",
    "--workload",
    "phases",
    "--windows",
    "6",
    "--pages",
    "64",
    "--repeats",
    "1",
    "--link",
    "1Gbit",
    "--arms",
    "raw;lz4;zstd:level=1",
    "--policies",
    "auto;d-ucb:gamma=0.95;sw-ucb:window=20",
]


@pytest.fixture
def figure(tmp_path, monkeypatch, capsys):
    """The figure ``evaluate --plot`` draws for a six-window run, kept open for study."""
    import matplotlib.pyplot as plt

    drawn = []

    def keep(ev, path, max_policies=6):
        drawn.append((ev, evaluation_plot.evaluation_figure(ev, max_policies)))
        return path

    monkeypatch.setattr(evaluation_plot, "plot_evaluation", keep)
    assert main([*SHORT_RUN, "--plot", str(tmp_path / "out.png")]) == 0
    capsys.readouterr()
    ev, fig = drawn[0]
    yield ev, fig
    plt.close(fig)


def test_each_curve_ends_at_the_sum_its_legend_names_beside_the_total(figure):
    ev, fig = figure
    bottom = fig.axes[1]
    scores = {s.label: s for s in ev.scores}
    curves = [line for line in bottom.get_lines() if line.get_label() != "oracle"]
    assert len(curves) >= 4
    for line in curves:
        label = line.get_label()
        match = re.fullmatch(r"(.+): sum (\d\.\d{3}), total (\d\.\d{3})", label)
        assert match, label
        assert float(match[2]) == pytest.approx(line.get_ydata()[-1], abs=5e-4)
        full = next(name for name in scores if short_label(name) == match[1])
        assert float(match[3]) == pytest.approx(scores[full].vs_oracle, abs=5e-4)
    assert bottom.get_legend().get_title().get_text() == (
        "policy: sum and total, each over the oracle's"
    )


def test_the_title_names_the_objective_in_words(figure):
    _, fig = figure
    assert fig.axes[0].get_title() == (
        "chosen arm per window (throughput at 1 Gbit/s, 2 workers, clock=cpu)"
    )


def test_window_ticks_are_whole_numbers_on_a_short_trace(figure):
    _, fig = figure
    ticks = [t for t in fig.axes[1].get_xticks() if 0 <= t <= 5]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_legend_names_are_whole_words(figure):
    _, fig = figure
    for ax in fig.axes:
        for text in ax.get_legend().get_texts():
            name = text.get_text().split(": sum ")[0]
            assert len(name) <= evaluation_plot.LABEL_CHARS, name
            assert name.endswith(("…", ")")) or "(" not in name, name


@pytest.mark.parametrize(
    ("label", "short"),
    [
        ("auto", "auto"),
        (
            "d-ucb(gamma=0.95, c=2.0, window=100, decay=0.5, scale=1.0)",
            "d-ucb(gamma=0.95, c=2.0, window=100, …",
        ),
        ("probe-commit(probe_windows=3, probe_every=200)", "probe-commit(probe_windows=3, …"),
        ("x(averyveryveryveryveryveryveryverylongparameter=1)", "x(…"),
    ],
)
def test_long_policy_names_are_cut_at_a_parameter(label, short):
    assert short_label(label) == short
    assert len(short) <= 40


def test_objectives_read_as_words():
    assert objective_text({"name": "throughput", "link": 1.25e9, "workers": 2}) == (
        "throughput at 10 Gbit/s, 2 workers"
    )
    assert objective_text({"name": "cpu"}) == "cpu"


def test_trace_info_names_its_codec_as_written(tmp_path, capsys):
    trace = tmp_path / "t"
    argv = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "4"]
    assert main([*argv, "--codec", "zstd", "--out", str(trace)]) == 0
    capsys.readouterr()
    assert main(["trace", "info", str(trace)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"trace {trace} (format v5, pages stored with zstd level=1)"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_building_a_table_shows_a_progress_bar_on_a_terminal(monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(SHORT_RUN) == 0
    assert "total = throughput" in capsys.readouterr().out
    bar = terminal.getvalue()
    assert "\rphases: measuring arms:   0%|" in bar and "/6 [" in bar and " windows/s]" in bar
    assert bar.endswith("\r")  # the bar is cleared once the table is built
