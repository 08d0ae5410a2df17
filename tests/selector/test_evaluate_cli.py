"""``migcodec evaluate`` end to end on a small synthetic workload."""

import json

import pytest

from migcodec.cli import main
from migcodec.datasets import Window
from migcodec.selector.evaluation import WindowSourceError, check_windows


def test_evaluate_prints_scores_caches_the_table_and_plots(tmp_path, capsys):
    table = tmp_path / "table.npz"
    png = tmp_path / "out.png"
    args = [
        "evaluate",
        "--workload",
        "zero,text,random",
        "--windows",
        "9",
        "--phase-windows",
        "3",
        "--pages",
        "128",
        "--repeats",
        "1",
        "--arms",
        "raw;lz4;zstd:level=1",
        "--link",
        "1Gbit",
        "--policies",
        "ucb1 d-ucb:gamma=0.9 predictive",
        "--table",
        str(table),
        "--json",
    ]
    assert main([*args, "--plot", str(png)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["arms"] == ["raw", "lz4", "zstd level=1"]
    labels = [s["label"] for s in doc["scores"]]
    assert labels[:3] == ["fixed raw", "fixed lz4", "fixed zstd level=1"]
    assert any(label.startswith("d-ucb(gamma=0.9") for label in labels)
    for s in doc["scores"]:
        assert 0 < s["vs_oracle"] <= 1.0 + 1e-9
    assert doc["table"]["cached"] is False and table.exists()
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["table"]["cached"] is True


def test_evaluate_errors_say_what_to_do(tmp_path, capsys):
    assert main(["evaluate", "--workload", "nope"]) == 2
    assert "comma-separated" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--policies", "ucb1"]) == 2
    assert "workload" in capsys.readouterr().err


def test_windows_are_checked_before_evaluation():
    import numpy as np

    bad = Window(3, np.arange(2), np.zeros((2, 4096), np.uint8), np.zeros((1, 4096), np.uint8))
    with pytest.raises(WindowSourceError, match="window 3"):
        list(check_windows([bad]))


def test_evaluate_at_an_unlimited_link_models_it_as_codec_auto_does(capsys):
    """``--link unlimited`` was refused ("cannot read rate") though ``migrate`` takes it."""
    from migcodec.selector.adaptive_chooser import UNLIMITED_LINK

    args = ["evaluate", "--workload", "text", "--windows", "2", "--pages", "16"]
    args += ["--repeats", "1", "--arms", "raw;lz4", "--policies", "ucb1", "--json"]
    assert main([*args, "--link", "unlimited,1Gbit"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [r["link"] for r in results] == ["unlimited", "1Gbit"]
    assert [r["objective"]["link"] for r in results] == [UNLIMITED_LINK, 1e9 / 8]
    assert main([*args, "--link", "unlimited", "--link", "1Gbit"]) == 0  # was the last alone
    again = json.loads(capsys.readouterr().out)["results"]
    assert [r["objective"]["link"] for r in again] == [UNLIMITED_LINK, 1e9 / 8]
    with pytest.raises(SystemExit):
        main([*args, "--link", "unlimited,0"])
    assert "argument --link: a link of '0' carries nothing" in capsys.readouterr().err


def test_a_table_file_of_other_windows_or_arms_is_refused_not_scored_as_these(tmp_path, capsys):
    """``--table FILE`` was loaded whatever it held: a table of another trace, workload or
    ``--arms`` was scored and reported as the one asked for."""
    table = tmp_path / "t.npz"
    args = ["evaluate", "--workload", "text", "--windows", "2", "--pages", "16", "--repeats"]
    args += ["1", "--policies", "ucb1", "--table", str(table), "--json"]
    assert main([*args, "--arms", "raw;lz4"]) == 0
    assert json.loads(capsys.readouterr().out)["arms"] == ["raw", "lz4"]
    refused = (
        f"migcodec evaluate: --table {table} holds a table of another trace or workload, or "
        "of other --arms, --repeats, --batch-pages or --sample-pages; give another --table, "
        "or pass --rebuild to measure this one and replace it\n"
    )
    for other in (["--arms", "raw;zstd"], ["--arms", "raw;lz4", "--seed", "1"]):
        assert main([*args, *other]) == 2
        assert capsys.readouterr().err == refused
    assert main([*args, "--arms", "raw;lz4"]) == 0
    assert json.loads(capsys.readouterr().out)["table"]["cached"] is True
    assert main([*args, "--arms", "raw;zstd", "--rebuild"]) == 0
    assert json.loads(capsys.readouterr().out)["arms"] == ["raw", "zstd"]


def test_a_table_file_kept_in_the_trace_directory_is_found_by_the_next_run(tmp_path, capsys):
    """Every file in a trace's directory keyed its tables: a ``--table`` kept there changed
    the key when written, so the next run refused its own table as one of another trace."""
    trace = tmp_path / "t"
    synth = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "2"]
    assert main([*synth, "--out", str(trace)]) == 0
    args = ["evaluate", str(trace), "--repeats", "1", "--arms", "raw;lz4", "--policies", "ucb1"]
    args += ["--table", str(trace / "table.npz"), "--json"]
    capsys.readouterr()
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["table"]["cached"] is False
    (trace / "notes.txt").write_text("where this trace came from")
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["table"]["cached"] is True


def _trace_of_8k_pages(path):
    import numpy as np

    from migcodec.datasets import generate_pages
    from migcodec.datasets.trace import TraceWriter

    with TraceWriter(path, memory_pages=64, page_size=8192, window_s=0.1) as writer:
        for i, kind in enumerate(("text", "random", "seq")):
            pages = generate_pages(kind, 16, i, 8192)
            writer.write(Window(i, np.arange(16) + 16 * i, pages))
    return path


def test_a_trace_of_other_pages_is_modelled_by_a_calibration_on_its_pages(tmp_path, capsys):
    """A trace captured on a host of 8 KiB pages: this machine's 4 KiB calibration would
    price each page at half its work; ``calibrated`` calibrates on its pages instead, and
    a cost model file of other pages is refused, naming both sizes."""
    from migcodec.selector import parse_arms
    from migcodec.selector.costmodel import default_path, machine_cost_model

    trace = _trace_of_8k_pages(tmp_path / "t8k")
    args = ["evaluate", str(trace), "--arms", "raw;lz4", "--repeats", "1", "--policies", "ucb1"]
    assert main([*args, "--cost-model", "calibrated", "--json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["windows"] == 3
    assert default_path(8192, 64).exists()
    four_k = tmp_path / "model-4k.json"
    machine_cost_model(parse_arms("raw;lz4")).save(four_k)
    assert main([*args, "--cost-model", str(four_k)]) == 2
    assert (
        f"cost model {four_k} was calibrated on 4096-byte pages and t8k holds 8192-byte "
        "pages; pass --cost-model calibrated to calibrate on its pages"
    ) in capsys.readouterr().err


def test_a_measured_run_that_replaces_a_damaged_calibration_says_so(tmp_path, capsys):
    """A table is built with this machine's calibration as its priors, made again where
    the one saved is damaged: said by ``--cost-model calibrated`` only, so a measured run
    replaced it without a word, and the next calibrated run's numbers changed unexplained.
    On pages of 8 KiB, whose calibration no other test shares."""
    from migcodec.selector.costmodel import default_path

    trace = _trace_of_8k_pages(tmp_path / "t8k")
    args = ["evaluate", str(trace), "--arms", "raw;lz4", "--repeats", "1", "--policies", "ucb1"]
    assert main([*args, "--json", "--table-dir", str(tmp_path / "a")]) == 0
    assert "note:" not in capsys.readouterr().err
    path = default_path(8192, 64)
    text = path.read_text()
    path.write_text(text.replace('"per_call": ', '"per_call": ,', 1))  # damaged
    assert main([*args, "--json", "--table-dir", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert f"migcodec evaluate: note: the calibration saved at {path} was not used (" in err
    assert path.read_text() != text.replace('"per_call": ', '"per_call": ,', 1)  # made again


def test_a_table_cached_by_a_run_with_a_cost_model_file_keeps_this_machine_s_priors(
    tmp_path, capsys
):
    """Built with a file's priors and cached under a key that does not name the cost
    model, the table was replayed by the next measured run at the file's decision prices
    (10 ms each: `auto` at 0.02 of the oracle where it was at 0.93)."""
    from migcodec.hashing import seal, unseal
    from migcodec.selector import parse_arms
    from migcodec.selector.costmodel import machine_cost_model
    from migcodec.selector.decisions import decision_prices

    trace = tmp_path / "t"
    synth = ["trace", "synth", "--workload", "memcached", "--pages", "256", "--windows", "3"]
    assert main([*synth, "--out", str(trace)]) == 0
    machine = machine_cost_model(parse_arms("raw;lz4"))
    dear = tmp_path / "dear.json"
    machine.save(dear)
    doc = unseal(json.loads(dear.read_text()))
    for label, cost in doc["arms"].items():
        if "decision" in label:
            cost["per_call"] = 0.01
    dear.write_text(json.dumps(seal(doc)))
    args = ["evaluate", str(trace), "--arms", "raw;lz4", "--repeats", "1", "--json"]
    args += ["--policies", "auto"]
    capsys.readouterr()
    assert main([*args, "--cost-model", str(dear)]) == 0
    by_file = json.loads(capsys.readouterr().out)
    assert by_file["table"]["cached"] is False
    assert by_file["scores"][-1]["feature_s"] >= 0.01  # the file's prices, as it models
    assert main([*args, "--cost-model", "measured"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["table"]["cached"] is True
    assert measured["table"]["probe_decisions"] == decision_prices(machine, 2)
    assert measured["scores"][-1]["feature_s"] < 0.01


def test_a_calibrated_evaluation_whose_calibration_cannot_be_kept_says_so(
    tmp_path, capsys, monkeypatch
):
    """Its numbers were to be the same on every run; with nowhere to keep the calibration
    every run made another, and said nothing."""
    from migcodec.selector.costmodel import default_path

    trace = tmp_path / "t"
    synth = ["trace", "synth", "--workload", "text", "--pages", "64", "--windows", "2"]
    assert main([*synth, "--out", str(trace)]) == 0
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    args = ["evaluate", str(trace), "--arms", "raw", "--repeats", "1", "--policies", "ucb1"]
    capsys.readouterr()
    assert main([*args, "--cost-model", "calibrated", "--json"]) == 0
    assert capsys.readouterr().err == (
        f"migcodec evaluate: note: this calibration could not be kept at "
        f"{default_path(4096, 64)} (Not a directory): the next run calibrates again, and its "
        "numbers may differ\n"
    )


def test_a_default_arm_that_cannot_describe_a_trace_s_pages_is_named_as_an_arm(tmp_path, capsys):
    """Of a trace of 64 KiB pages, XBZRLE (a default arm the user never named) was refused
    with "use another codec", where leaving it out of --arms is what to do."""
    import numpy as np

    from migcodec.datasets import generate_pages
    from migcodec.datasets.trace import TraceWriter

    with TraceWriter(tmp_path / "t", memory_pages=16, page_size=65536) as writer:
        writer.write(Window(0, np.arange(4), generate_pages("text", 4, 0, 65536)))
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "t"), "--repeats", "1"]) == 2
    assert capsys.readouterr() == (
        "",
        "migcodec evaluate: xbzrle describes pages of at most 16384 bytes, not 65536; use "
        "another codec (e.g. lz4 or zstd) for larger pages; or leave its arms out of --arms\n",
    )


def test_a_fixed_policy_asked_for_is_in_the_overall_rows(tmp_path, capsys):
    """Every label starting "fixed" was left out of them, with the arms' own: the only
    policy asked for was missing from the overall result."""
    synth = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "2"]
    for seed in (0, 1):
        assert main([*synth, "--seed", str(seed), "--out", str(tmp_path / f"t{seed}")]) == 0
    capsys.readouterr()
    argv = ["evaluate", str(tmp_path / "t0"), str(tmp_path / "t1"), "--repeats", "1"]
    assert main([*argv, "--arms", "raw;lz4", "--policies", "fixed:arm=1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [row["policy"] for row in doc["overall"]] == ["fixed lz4"]
    assert doc["overall"][0]["traces"] == 2


def test_policies_of_long_labels_are_shown_whole(tmp_path, capsys):
    """Cut at 40 and 50 characters, two configurations printed as one line twice."""
    synth = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "2"]
    for seed in (0, 1):
        assert main([*synth, "--seed", str(seed), "--out", str(tmp_path / f"t{seed}")]) == 0
    long = "auto:drift=0.1,change=0.5,negligible=0.001,balance="
    policies = f"{long}0.02;{long}0.05"
    capsys.readouterr()
    argv = ["evaluate", str(tmp_path / "t0"), str(tmp_path / "t1"), "--repeats", "1"]
    assert main([*argv, "--arms", "raw;lz4", "--policies", policies]) == 0
    out = capsys.readouterr().out
    # in each trace's rows and in the overall rows (balance=0.05 is the default: unlabelled)
    for label in ("negligible=0.001,balance=0.02) ", "negligible=0.001) "):
        assert out.count(f"auto(drift=0.1,change=0.5,{label}") == 3, out


def _keep_stamps(path, change) -> None:
    """Apply ``change`` to ``path``'s bytes in place, its size and modification time kept
    (as damage can, or a copy made with ``cp -p``)."""
    import os

    stat = os.stat(path)
    data = bytearray(path.read_bytes())
    change(data)
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_cached_table_of_a_trace_damaged_since_is_refused_not_scored(tmp_path, capsys):
    """The cache key has the trace's files' sizes and stamps, which a byte changed in place
    keeps: the trace's records are checked against their checksums before its cached
    table is used."""
    trace = tmp_path / "t"
    synth = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "2"]
    assert main([*synth, "--out", str(trace)]) == 0
    args = ["evaluate", str(trace), "--repeats", "1", "--arms", "raw;lz4", "--policies", "ucb1"]
    assert main([*args, "--json"]) == 0
    capsys.readouterr()

    def flip(data):
        data[len(data) // 2] ^= 0xFF  # in the last record's body

    _keep_stamps(trace / "chunk-000000.mct", flip)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"migcodec evaluate: trace {trace}: window 1: record body fails")


def test_a_trace_whose_manifest_changed_with_its_stamps_kept_has_another_key(tmp_path):
    """Another trace copied over this one with its stamps kept may have files of the same
    sizes; its manifest (creation time, command, totals) is its own, and keys its tables."""
    from migcodec.selector.evaluation.windows import trace_identity

    trace = tmp_path / "t"
    synth = ["trace", "synth", "--workload", "phases", "--pages", "256", "--windows", "2"]
    assert main([*synth, "--out", str(trace)]) == 0
    before = trace_identity(trace)

    def other_second(data):
        at = data.index(b'"created"') + len(b'"created": "2026-01-01T00:00:0')
        data[at] = ord("1") if data[at] != ord("1") else ord("2")

    _keep_stamps(trace / "manifest.json", other_second)
    assert trace_identity(trace) != before


def _strict(text: str):
    """``text`` read as strict JSON: the NaN and Infinity tokens are refused."""

    def refuse(token):
        raise ValueError(f"{token} is no JSON")

    return json.loads(text, parse_constant=refuse)


def test_evaluate_json_writes_a_score_against_nothing_as_null(monkeypatch, capsys):
    """A ratio to a total of zero is nan, and a regret can be inf: the document held the
    NaN and Infinity tokens strict JSON parsers refuse."""
    from migcodec.selector.evaluation.replay import Score

    whole = Score.as_dict

    def unscorable(score):
        return {**whole(score), "vs_oracle": float("nan"), "final_regret": float("inf")}

    monkeypatch.setattr(Score, "as_dict", unscorable)
    args = ["evaluate", "--workload", "text", "--windows", "2", "--pages", "8", "--repeats"]
    assert main([*args, "1", "--arms", "raw;lz4", "--policies", "ucb1", "--json"]) == 0
    doc = _strict(capsys.readouterr().out)
    assert all(s["vs_oracle"] is None and s["final_regret"] is None for s in doc["scores"])
    assert all(s["total"] > 0 for s in doc["scores"])  # finite numbers stay numbers


TRACE_MAKERS = "`migcodec trace capture` or `migcodec trace synth`"


def test_a_trace_that_does_not_exist_or_is_a_file_says_what_belongs_there(tmp_path, capsys):
    """A missing trace was "not a directory", as if something else stood there."""
    missing, afile = tmp_path / "nothing", tmp_path / "afile"
    afile.write_text("mine")
    for trace, what in ((missing, "does not exist"), (afile, "is not a directory")):
        assert main(["evaluate", str(trace)]) == 2
        assert capsys.readouterr() == (
            "",
            f"migcodec evaluate: trace {trace} {what}; give a trace directory written by "
            f"{TRACE_MAKERS}, or a workload as --workload NAME (e.g. --workload memcached)\n",
        )
    for corpus, what in ((missing, "does not exist"), (afile, "is not a directory")):
        assert main(["evaluate", "--corpus", str(corpus)]) == 2
        assert capsys.readouterr() == (
            "",
            f"migcodec evaluate: corpus {corpus} {what}; give a directory of traces, each "
            f"written by {TRACE_MAKERS}\n",
        )


def test_a_directory_of_traces_given_as_a_trace_is_named_as_such_with_corpus(tmp_path, capsys):
    """It was "neither a trace directory nor a workload", as of a directory of anything."""
    traces = tmp_path / "traces"
    synth = ["trace", "synth", "--workload", "text", "--pages", "64", "--windows", "2"]
    for name in ("b", "a"):
        assert main([*synth, "--dirty-pages", "8", "--out", str(traces / name)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(traces), "--repeats", "1"]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec evaluate: trace {traces} is a directory of 2 traces, not a trace; pass "
        f"--corpus {traces} to evaluate every one, or give one of them (e.g. {traces / 'a'})\n",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", str(empty), "--repeats", "1"]) == 2
    assert capsys.readouterr() == (
        "",
        f"migcodec evaluate: trace {empty} is a directory with no manifest.json, so no trace "
        f"(nor a directory of them); give a trace directory written by {TRACE_MAKERS}, or a "
        "workload as --workload NAME (e.g. --workload memcached)\n",
    )


@pytest.mark.parametrize("where", ["--table-dir", "beside the trace"])
def test_a_cached_table_of_another_trace_under_this_one_s_name_is_refused(tmp_path, capsys, where):
    """A cached table is found by its name, which carries its key: two traces' tables
    swapped (or one copied over the other) must not be scored as the other trace's."""
    traces = [tmp_path / "a", tmp_path / "b"]
    for seed, trace in enumerate(traces):
        synth = ["trace", "synth", "--workload", "random", "--pages", "64", "--windows", "2"]
        assert main([*synth, "--seed", str(seed), "--out", str(trace)]) == 0
    tables = tmp_path / "tables"
    option = ["--table-dir", str(tables)] if where == "--table-dir" else []
    args = ["--repeats", "1", "--arms", "raw;lz4", "--policies", "ucb1", "--json", *option]
    for trace in traces:
        assert main(["evaluate", str(trace), *args]) == 0
    capsys.readouterr()
    found = [sorted((tables if option else t).glob("selector-table-*.npz")) for t in traces]
    a, b = found[0] if option else [f[0] for f in found]  # a's table, then b's
    a.write_bytes(b.read_bytes())
    assert main(["evaluate", str(traces[0]), *args]) == 2
    assert capsys.readouterr().err == (
        f"migcodec evaluate: cached table {a} holds a table of another trace or workload, or "
        "of other --arms, --repeats, --batch-pages or --sample-pages, than its name says "
        "(copied or renamed over it); pass --rebuild to measure this one and replace it, or "
        "delete it\n"
    )
    assert main(["evaluate", str(traces[0]), *args, "--rebuild"]) == 0


def test_an_empty_trace_of_a_corpus_is_named(tmp_path, capsys):
    """With several traces, "no windows with pages to evaluate" alone did not say which."""
    from migcodec.datasets.trace import TraceWriter

    corpus = tmp_path / "corpus"
    synth = ["trace", "synth", "--workload", "text", "--pages", "64", "--windows", "2"]
    assert main([*synth, "--dirty-pages", "8", "--out", str(corpus / "a")]) == 0
    with TraceWriter(corpus / "b", memory_pages=64, page_size=4096, window_s=0.1):
        pass  # closed with no window
    capsys.readouterr()
    assert main(["evaluate", "--corpus", str(corpus), "--repeats", "1", "--arms", "raw;lz4"]) == 2
    assert capsys.readouterr().err == (
        f"migcodec evaluate: trace {corpus / 'b'}: no windows with pages to evaluate: the trace "
        "or workload is empty\n"
    )


def test_a_preset_s_windows_are_as_large_as_pages_asks():
    """`evaluate --workload memcached --pages 100000` measured windows of the preset's
    16384 pages of memory, without a word: its memory now grows to hold them."""
    from migcodec.datasets import get_workload
    from migcodec.selector.evaluation import workload_windows

    memory = get_workload("memcached").n_pages
    sizes = [w.n_pages for w in workload_windows("memcached", 2, memory + 100)]
    assert sizes == [memory + 100] * 2
    assert [w.n_pages for w in workload_windows("memcached", 2, 100)] == [100] * 2


def test_a_trace_at_a_path_that_is_no_utf8_is_written_and_evaluated(tmp_path, capsysbinary):
    """`evaluate` refused it: the cache key encoded the path strictly ("surrogates not
    allowed"); and under a strict UTF-8 output, so did the summary lines that name it.
    Names are written as the file system holds them, as other Unix tools write them."""
    import os

    trace = tmp_path / os.fsdecode(b"t\xff")
    try:
        trace.mkdir()
    except OSError as exc:  # a file system that takes only UTF-8 names
        pytest.skip(f"this file system refuses the name: {exc}")
    trace.rmdir()
    synth = ["trace", "synth", "--workload", "text", "--pages", "16", "--windows", "2"]
    assert main([*synth, "--out", str(trace)]) == 0
    assert os.fsencode(trace) + b": 2 windows" in capsysbinary.readouterr().out
    assert main(["evaluate", str(trace), "--policies", "auto", "--repeats", "1", "--json"]) == 0
    assert json.loads(capsysbinary.readouterr().out)["windows"] == 2
