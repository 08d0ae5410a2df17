"""``benchmarks/selector_eval.py --from-json --markdown`` writes the results document from a
saved run: the best fixed arm is the one with the largest calibrated total, measured cells are
medians with their spread, and the summary rows are recomputed from the cells."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.benchmark_module import benchmark_module
from tests.plugin_dist import REPO


def _row(trace: str, link: str, policy: str, oracle, fixed) -> dict:
    return {
        "trace": trace,
        "link": link,
        "policy": policy,
        "vs_oracle": oracle,
        "vs_best_fixed": fixed,
    }


def test_document_from_a_saved_run(tmp_path: Path) -> None:
    calibrated = []
    measured = []
    for trace, auto in (("alpha", 0.98), ("beta", 0.90)):
        calibrated += [
            _row(trace, "1Gbit", "fixed lz4", 0.95, 1.0),
            _row(trace, "1Gbit", "fixed zstd level=1", 0.97, 1.0),
            _row(trace, "1Gbit", "auto", auto, auto / 0.97),
            _row(trace, "1Gbit", "d-ucb", 0.5, 0.5),
        ]
        measured.append(
            _row(trace, "1Gbit", "auto", [auto, auto - 0.02, auto + 0.01], [1.0, 0.99, 1.02])
        )
    doc = {
        "command": "python benchmarks/selector_eval.py --json",
        "commit": "abc1234",
        "tables": 3,
        "repeats": 3,
        "links": ["1Gbit"],
        "workers": 2,
        "calibrated": calibrated,
        "measured": measured,
        "loto": [
            {
                "held_out": "alpha",
                "config": {"name": "auto", "drift": 0.1},
                "1Gbit vs_oracle": 0.97,
                "1Gbit vs_best_fixed": 1.01,
            },
            {
                "held_out": "beta",
                "config": {"name": "auto", "drift": 0.2},
                "1Gbit vs_oracle": 0.89,
                "1Gbit vs_best_fixed": 0.95,
            },
        ],
        "cpu_vs_model": [
            {"trace": "alpha", "arm": "lz4", "ratios": [1.2, 1.0, 1.1]},
            {"trace": "alpha", "arm": "xbzrle", "ratios": [2.0, 1.5, 1.8]},
            {"trace": "beta", "arm": "lz4", "ratios": [0.9, 0.8, 0.95]},
        ],
    }
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(doc))
    out = tmp_path / "selector.md"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "selector_eval.py"),
            "--from-json",
            str(saved),
            "--markdown",
            str(out),
        ],
        check=True,
    )
    text = out.read_text()
    assert "`python benchmarks/selector_eval.py --json` at commit `abc1234`" in text
    assert (
        "| alpha | 1 Gbit/s | zstd level=1 (0.970) | 0.980 | 1.010 | 0.980 (0.960-0.990) "
        "| 1.000 (0.990-1.020) | 0.500 |" in text
    )
    assert "| beta | 1 Gbit/s | zstd level=1 (0.970) | 0.900 | 0.928 |" in text
    assert "| mean (min) | | | 0.940 (0.900) | 0.969 (0.928) | 0.940 (0.900) " in text
    assert "| alpha | drift=0.1 | 0.970, 1.010 |" in text
    assert "| mean (min) | | 0.930 (0.890), 0.980 (0.950) |" in text
    assert "## Measured CPU time against the calibrated model" in text
    assert "| trace | lz4 | xbzrle |" in text
    assert "| alpha | 1.100 (1.000-1.200) | 1.800 (1.500-2.000) |" in text
    assert "| beta | 0.900 (0.800-0.950) | - |" in text
    assert text.startswith("# Selector results on the memory of real programs\n")
    assert "every trace under `corpus/traces/`" in text  # a run that names no corpus


def test_the_document_names_the_corpus_it_was_run_on() -> None:
    render = benchmark_module("selector_eval").render_markdown
    cells = [_row("alpha", "1Gbit", p, 0.9, 1.0) for p in ("fixed lz4", "auto", "d-ucb")]
    measured = [_row("alpha", "1Gbit", "auto", [0.9], [1.0])]
    doc = {"corpus": "corpus/heldout", "tables": 1, "repeats": 1, "links": ["1Gbit"]}
    doc |= {"calibrated": cells, "measured": measured}
    text = render(doc)
    assert text.startswith("# Selector results on the memory of real programs: `corpus/heldout/`")
    assert "every trace under `corpus/heldout/`" in text


def test_a_run_under_another_objective_names_it_in_one_column() -> None:
    """``--objective cpu`` scores one column, the objective's, with no link, no workers and
    no sharing of windows, which only the throughput objective has."""
    render = benchmark_module("selector_eval").render_markdown
    cells = [_row("alpha", "cpu", p, 0.9, 1.0) for p in ("fixed raw", "auto", "d-ucb")]
    measured = [_row("alpha", "cpu", "auto", [0.9], [1.0])]
    doc = {"tables": 1, "repeats": 1, "links": ["cpu"], "objective": "cpu"}
    text = render(doc | {"calibrated": cells, "measured": measured})
    assert "the default arms, the host CPU (`cpu`) objective, features, probes" in text
    assert "| trace | objective | best fixed arm (/ oracle) |" in text
    assert "| alpha | CPU | raw (0.900) | 0.900 | 1.000 |" in text
    assert "workers" not in text and "sharing a window" not in text
    throughput = render(
        {**doc, "links": ["1Gbit"], "objective": "throughput"}
        | {
            "calibrated": [dict(c, link="1Gbit") for c in cells],
            "measured": [dict(m, link="1Gbit") for m in measured],
        }
    )
    assert "| trace | link |" in throughput and "2 workers, the throughput objective" in throughput


def test_cpu_against_model_counts_windows_of_a_batch_or_more() -> None:
    page = 4096
    pages = np.array([8, 64, 200, 500])
    measured = SimpleNamespace(
        page_size=page,
        labels=["lz4", "xbzrle", "never"],
        input_bytes=(pages * page)[:, None].repeat(3, axis=1),
        # the 8-page window's ratio (100) would move every median: it must be left out
        cpu_s=np.array([[100.0, 100.0, 1.0], [1.0, 3.0, 1.0], [4.0, 12.0, 1.0], [12.0, 1.0, 1.0]]),
    )
    modelled = SimpleNamespace(
        cpu_s=np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [2.0, 3.0, 0.0], [4.0, 1.0, 0.0]])
    )
    ratios = benchmark_module("selector_eval").cpu_against_model(measured, modelled, least_pages=64)
    assert ratios == {"lz4": 2.0, "xbzrle": 3.0}  # medians of (1, 2, 3) and (3, 4, 1)


def test_from_json_needs_a_document_path(tmp_path: Path) -> None:
    saved = tmp_path / "run.json"
    saved.write_text("{}")
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "selector_eval.py"), "--from-json", str(saved)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "--from-json writes a document: give --markdown PATH" in done.stderr


@pytest.mark.parametrize(
    ("text", "why"),
    [('{"tables": [', "JSONDecodeError: "), ("{}", "KeyError: "), ("[1]", "")],
)
def test_from_json_of_no_document_of_its_own_is_one_line(tmp_path: Path, text, why) -> None:
    """A truncated or foreign file was a traceback (JSONDecodeError, KeyError)."""
    saved = tmp_path / "run.json"
    saved.write_text(text)
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "selector_eval.py"),
            *("--from-json", str(saved), "--markdown", str(tmp_path / "doc.md")),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith(
        f"selector_eval.py: error: --from-json {saved}: not a document this script wrote "
        f"with --json ({why}"
    ), last
    assert last.endswith("; write it again with --json")
    assert not (tmp_path / "doc.md").exists()


def _selector_eval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "selector_eval.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_from_json_of_a_fifo_or_into_a_directory_is_one_line(tmp_path: Path) -> None:
    """A FIFO waited for a writer forever; a --markdown directory was a traceback."""
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = _selector_eval("--from-json", str(fifo), "--markdown", str(tmp_path / "d.md"))
    assert done.returncode == 2
    assert "is a named pipe (FIFO), not a regular file" in done.stderr.splitlines()[-1]
    saved = tmp_path / "run.json"
    saved.write_text("{}")
    (tmp_path / "dir.md").mkdir()
    module = benchmark_module("selector_eval")
    ap, _ = module.parse_args([])
    with pytest.raises(SystemExit):
        module.write_document(ap, str(tmp_path / "dir.md"), "text")


def test_leave_one_trace_out_of_one_trace_is_refused(tmp_path: Path) -> None:
    """Every score was the mean of nothing, and the grid's first entry shown as chosen."""
    from migcodec.cli import main

    corpus = tmp_path / "corpus"
    argv = ["trace", "synth", "--workload", "text", "--pages", "64", "--windows", "2"]
    assert main([*argv, "--out", str(corpus / "t")]) == 0
    done = _selector_eval("--corpus", str(corpus), "--loto")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"selector_eval.py: error: --loto chooses each trace's configuration on the others, "
        f"and {corpus} holds one trace; give a corpus of two or more"
    )


def test_links_and_policies_given_twice_are_all_evaluated():
    module = benchmark_module("selector_eval")
    _, args = module.parse_args(["--links", "1Gbit", "--links", "10Gbit", "25Gbit"])
    assert args.links == ["1Gbit", "10Gbit", "25Gbit"]
    _, args = module.parse_args(["--policies", "auto", "--policies", "fixed:arm=1"])
    assert args.policies == ["auto", "fixed:arm=1"]
    _, args = module.parse_args([])
    assert args.links == ["1Gbit", "10Gbit"] and args.policies == list(module.DEFAULT_POLICIES)


def test_a_ratio_a_hair_from_1_is_shown_on_its_side_of_1() -> None:
    """Rounded to three decimals, a cell 0.03 % behind its best fixed arm read 1.000, level
    with it: the document's claim is which side of 1 each cell lies on."""
    module = benchmark_module("selector_eval")
    shown = [module._r(x) for x in (0.99966, 1.00041, 1.0, 0.98, 1.0349, 0.99999999)]
    assert shown == ["0.9997", "1.0004", "1.000", "0.980", "1.035", "0.999999"]
    assert module._fmt([0.9996, 0.99, 1.0]) == "0.9996 (0.990-1.000)"


def test_links_and_workers_are_refused_under_another_objective(capsys) -> None:
    """They set the throughput objective: under ``--objective cpu`` they were ignored
    without a word, and the command recorded in the document still named them."""
    parse_args = benchmark_module("selector_eval").parse_args
    for extra in (["--links", "1Gbit"], ["--workers", "4"]):
        with pytest.raises(SystemExit) as refused:
            parse_args(["--objective", "cpu", *extra])
        assert refused.value.code == 2
        assert "--links and --workers set the throughput objective; the cpu objective" in (
            capsys.readouterr().err
        )
    assert parse_args(["--objective", "cpu"])[1].workers == 2.0
