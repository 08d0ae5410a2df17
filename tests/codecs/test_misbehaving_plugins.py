"""Third-party plugins that misbehave: each is named with what to do, never a traceback,
and never takes the other plugins down with it.

Plugins are registered with ``plugin_site`` exactly as pip would register them.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from migcodec.codecs import CodecUnavailable, get_codec, plugin_statuses
from migcodec.codecs.bounded import BUILDING
from migcodec.datasets.trace import TraceReader
from tests.hang_guard import within
from tests.plugin_dist import migcodec_command, subprocess_env, write_dist

#: module code that ends an import with something stevedore does not hand to its callback
ABORTING_IMPORTS = {
    "exits": ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
    "asserts": ("assert False, 'no device table'\n", "AssertionError: no device table"),
    "own-base": (
        "class Stop(BaseException):\n    pass\nraise Stop('stopped')\n",
        "Stop: stopped",
    ),
}


@pytest.fixture
def aborting_plugins(plugin_site: Path) -> Path:
    """One distribution with a plugin per import that ends outside ``Exception``. Its
    modules are not named ``*_test``: pytest would rewrite their ``assert``."""
    write_dist(
        plugin_site,
        "migcodec-aborting",
        {name: f"migcodec_{name.replace('-', '_')}_plugin:Codec" for name in ABORTING_IMPORTS},
        {
            f"migcodec_{name.replace('-', '_')}_plugin": source
            for name, (source, _) in ABORTING_IMPORTS.items()
        },
    )
    return plugin_site


def _load_failure(what: str) -> str:
    """get_codec's refusal of a plugin whose import ended with ``what``."""
    return (
        f"failed to load ({what}); reinstall the package that provides it: pip install "
        "--force-reinstall migcodec-aborting"
    )


@pytest.mark.parametrize("name", sorted(ABORTING_IMPORTS))
def test_an_import_that_exits_or_asserts_is_a_load_failure(aborting_plugins, name):
    what = ABORTING_IMPORTS[name][1]
    assert _refusal(name) == f"codec {name!r} {_load_failure(what)}"
    statuses = {s.name: s for s in plugin_statuses()}
    assert statuses[name].reason == (
        f"failed to load: {what}; reinstall the package that provides it: pip install "
        "--force-reinstall migcodec-aborting"
    )
    assert statuses["lz4"].available


def test_migcodec_codecs_lists_plugins_whose_import_exits(aborting_plugins, tmp_path):
    result = subprocess.run(
        [*migcodec_command(), "codecs"],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(tmp_path / "cache", aborting_plugins),
    )
    assert (result.returncode, result.stderr) == (0, "")
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "failed to load: SystemExit: 3;" in lines["exits"]
    assert lines["lz4"].split()[2] == "yes"


#: codec classes whose probe, name or constructor is not what the contract asks
FAULTY_CLASSES = textwrap.dedent(
    """
    from migcodec.codecs.plugins.raw import RawCodec

    class ProbeSaysYes(RawCodec):
        name = "probe-says-yes"

        @classmethod
        def probe(cls):
            return "yes"

    class OtherName(RawCodec):
        name = "other-name"

    class BytesConfig(RawCodec):
        name = "bytes-config"

        def __init__(self, key=b"\\x00"):
            self.key = key

    class StartFails(RawCodec):
        name = "start-fails"

        def __init__(self):
            raise RuntimeError("no context")

    class ProbeExits(RawCodec):
        name = "probe-exits"

        @classmethod
        def probe(cls):
            raise SystemExit(0)

    class ParamsExit(RawCodec):
        name = "params-exit"

        def params(self):
            raise SystemExit(0)
    """
)


@pytest.fixture
def faulty_classes(plugin_site: Path) -> Path:
    """One distribution with a plugin per class that breaks the contract outside its
    transform."""
    write_dist(
        plugin_site,
        "migcodec-faulty",
        {
            "probe-says-yes": "migcodec_faulty_plugin:ProbeSaysYes",
            "misnamed": "migcodec_faulty_plugin:OtherName",
            "start-fails": "migcodec_faulty_plugin:StartFails",
            "bytes-config": "migcodec_faulty_plugin:BytesConfig",
            "probe-exits": "migcodec_faulty_plugin:ProbeExits",
            "params-exit": "migcodec_faulty_plugin:ParamsExit",
        },
        {"migcodec_faulty_plugin": FAULTY_CLASSES},
    )
    return plugin_site


UNINSTALL = "upgrade the package that provides it, or uninstall it: pip uninstall migcodec-faulty"
MISNAMED = (
    "names codec class migcodec_faulty_plugin.OtherName, whose name is 'other-name'; a codec "
    f"class's name must be the name it is registered under; {UNINSTALL}"
)


def _refusal(name: str) -> str:
    """Why ``get_codec(name)`` refused the codec."""
    with pytest.raises(CodecUnavailable) as info:
        get_codec(name)
    return str(info.value)


def test_a_probe_that_returns_no_probe_makes_its_codec_unavailable(faulty_classes):
    assert _refusal("probe-says-yes") == (
        "codec 'probe-says-yes' cannot run here: probe failed: it returned str, not a "
        "migcodec Probe"
    )
    status = {s.name: s for s in plugin_statuses()}["probe-says-yes"]
    assert (status.available, status.path) == (False, "unavailable")


def test_a_class_named_otherwise_than_its_entry_point_is_refused_naming_both(faulty_classes):
    assert _refusal("misnamed") == f"entry point 'misnamed' {MISNAMED}"
    status = {s.name: s for s in plugin_statuses()}["misnamed"]
    assert (status.available, status.reason) == (False, f"the entry point {MISNAMED}")


def test_a_constructor_that_raises_is_a_codec_that_fails_to_start(faulty_classes):
    assert _refusal("start-fails") == (
        f"codec 'start-fails' failed to start (RuntimeError: no context); {UNINSTALL}"
    )


def test_a_probe_or_constructor_that_exits_is_refused_not_a_silent_success(faulty_classes, capsys):
    """``SystemExit(0)`` from a plugin's probe, constructor or params ended bench, migrate,
    send and evaluate with no output and exit status 0."""
    from migcodec.cli import main

    assert _refusal("probe-exits") == (
        "codec 'probe-exits' cannot run here: probe failed: SystemExit: 0"
    )
    assert _refusal("params-exit") == (
        f"codec 'params-exit' failed to start (SystemExit: 0); {UNINSTALL}"
    )
    assert main(["migrate", "--codec", "params-exit", "--memory", "1MiB", "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"migcodec migrate: codec 'params-exit' failed to start (SystemExit: 0); {UNINSTALL}\n"
    )


def test_migcodec_codecs_and_bench_name_faulty_classes(faulty_classes, tmp_path):
    env = subprocess_env(tmp_path / "cache", faulty_classes)
    listed = subprocess.run(
        [*migcodec_command(), "codecs"], capture_output=True, text=True, timeout=60, env=env
    )
    assert (listed.returncode, listed.stderr) == (0, "")
    bench = subprocess.run(
        [*migcodec_command(), "bench", "--codecs", "misnamed", "--pages", "64"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert (bench.returncode, bench.stdout) == (2, "")
    assert bench.stderr == f"migcodec bench: entry point 'misnamed' {MISNAMED}\n"


#: codecs whose transform raises, exits, or decodes to other bytes than it encoded
FAULTY_TRANSFORMS = textwrap.dedent(
    """
    import zlib

    from migcodec.codecs import Codec, CodecPath, PageEncoding

    class Lying(Codec):
        name = "lying"

        def encode_pages(self, pages):
            return pages[:, :64].tobytes()

        def decode_pages(self, blob, n_pages, page_size):
            return bytes(n_pages * page_size)

    class EncodeRaises(Lying):
        name = "encode-raises"

        def encode_pages(self, pages):
            raise ValueError("ring full")

    class EncodeExits(Lying):
        name = "encode-exits"

        def encode_pages(self, pages):
            raise SystemExit(7)

    class DecodeRaises(Lying):
        name = "decode-raises"

        def decode_pages(self, blob, n_pages, page_size):
            raise RuntimeError("no such dictionary")

    class DecodeShort(Lying):
        name = "decode-short"

        def decode_pages(self, blob, n_pages, page_size):
            return bytes(page_size)

    class DecodeExits(Lying):
        name = "decode-exits"

        def encode_pages(self, pages):
            return zlib.compress(pages.tobytes(), 1)

        def decode_pages(self, blob, n_pages, page_size):
            raise SystemExit(0)

    class DecodeGeneratorExit(DecodeExits):
        name = "decode-generator-exit"

        def decode_pages(self, blob, n_pages, page_size):
            raise GeneratorExit("closed")

    class NegativeDevice(DecodeExits):
        name = "negative-device"

        def encode_pages(self, pages):
            blob = zlib.compress(pages.tobytes(), 1)
            return PageEncoding(blob, None, CodecPath.EMULATED, -1.0)

        def decode_pages(self, blob, n_pages, page_size):
            return zlib.decompress(bytes(blob))

    class Keeping(Codec):
        name = "keeping"  # sends a key to pages its own instance keeps

        def encode_pages(self, pages):
            self.kept = getattr(self, "kept", [])
            self.kept.append(pages.tobytes())
            return (len(self.kept) - 1).to_bytes(8, "little")

        def decode_pages(self, blob, n_pages, page_size):
            return getattr(self, "kept", [])[int.from_bytes(bytes(blob), "little")]
    """
)


@pytest.fixture
def faulty_transforms(plugin_site: Path) -> Path:
    """One distribution with a codec per transform that breaks the contract."""
    write_dist(
        plugin_site,
        "migcodec-faulty",
        {
            "lying": "migcodec_transforms_plugin:Lying",
            "encode-raises": "migcodec_transforms_plugin:EncodeRaises",
            "encode-exits": "migcodec_transforms_plugin:EncodeExits",
            "decode-raises": "migcodec_transforms_plugin:DecodeRaises",
            "decode-short": "migcodec_transforms_plugin:DecodeShort",
            "decode-exits": "migcodec_transforms_plugin:DecodeExits",
            "decode-generator-exit": "migcodec_transforms_plugin:DecodeGeneratorExit",
            "keeping": "migcodec_transforms_plugin:Keeping",
            "negative-device": "migcodec_transforms_plugin:NegativeDevice",
        },
        {"migcodec_transforms_plugin": FAULTY_TRANSFORMS},
    )
    return plugin_site


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("lying", "decoded the benchmark pages to other bytes than it encoded"),
        ("encode-raises", "failed in the benchmark (ValueError: ring full)"),
        ("encode-exits", "failed in the benchmark (SystemExit: 7)"),
        (
            "decode-raises",
            "failed to decode the benchmark pages (RuntimeError: no such dictionary)",
        ),
        # the framework finds the output malformed: the codec's failure, said as such
        (
            "decode-short",
            "failed to decode the benchmark pages (DecodeError: decode-short decoded 4096 "
            "bytes where 64 pages (262144 bytes) were expected)",
        ),
        # a negative device rate in bench, a damaged table naming no codec in evaluate
        (
            "negative-device",
            "returned a device time of -1.0 from its transform, which must be a finite "
            "number of seconds >= 0, or None",
        ),
        # decoded by the instance that kept the pages, it was "every round trip verified"
        (
            "keeping",
            "failed to decode the benchmark pages (IndexError: list index out of range)",
        ),
    ],
)
def test_bench_names_a_codec_that_fails_or_lies(faulty_transforms, capsys, name, what):
    from migcodec.cli import main

    assert main(["bench", "--codecs", name, "--pages", "64"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"migcodec bench: codec {name!r} {what}; {UNINSTALL}\n")


#: each faulty transform's failure as ``evaluate`` meets it: a lie or a decode that raises
#: when the arm's first window is checked, an encode that raises or exits at the first
#: encode, which is a probe timed before any window
EVALUATE_FAILURES = [
    ("lying", "decoded window 0's pages to other bytes than it encoded"),
    ("decode-raises", "failed to decode window 0's pages (RuntimeError: no such dictionary)"),
    ("encode-raises", "failed to encode a probe of pages (ValueError: ring full)"),
    ("encode-exits", "failed to encode a probe of pages (SystemExit: 7)"),
]
EVALUATE = ["evaluate", "--repeats", "1", "--policies", "fixed:arm=0", "--json"]


@pytest.mark.parametrize(("name", "what"), EVALUATE_FAILURES)
def test_evaluate_refuses_an_arm_whose_codec_fails_or_lies(faulty_transforms, capsys, name, what):
    """Its sizes would be fiction (a lie was every window's best arm, and the oracle's):
    one line naming the codec, the window and what to do, not a score, nor a silent exit."""
    from migcodec.cli import main

    workload = ["--workload", "text", "--windows", "2", "--pages", "64"]
    assert main([*EVALUATE, *workload, "--arms", f"lz4;{name}"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == (
        "",
        f"migcodec evaluate: codec {name!r} {what}; {UNINSTALL}; or leave its arms out of --arms\n",
    )


def test_evaluate_names_a_codec_that_fails_as_it_is_calibrated(faulty_transforms, capsys):
    """``--cost-model calibrated`` encodes every arm before any table is measured."""
    from migcodec.cli import main

    workload = ["--workload", "text", "--windows", "2", "--pages", "64"]
    calibrated = ["--cost-model", "calibrated", "--arms", "encode-exits"]
    assert main([*EVALUATE, *workload, *calibrated]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == (
        "",
        "migcodec evaluate: codec 'encode-exits' failed to encode the pages it is calibrated "
        f"on (SystemExit: 7); {UNINSTALL}; or leave its arms out of --arms\n",
    )


def test_evaluate_names_the_trace_on_which_an_arm_lied(faulty_transforms, capsys, tmp_path):
    from migcodec.cli import main

    trace = Path(__file__).resolve().parents[2] / "corpus" / "traces" / "numpy"
    tables = tmp_path / "tables"
    assert main([*EVALUATE, str(trace), "--table-dir", str(tables), "--arms", "raw;lying"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == (
        "",
        f"migcodec evaluate: trace {trace}: codec 'lying' decoded window 0's pages to other "
        f"bytes than it encoded; {UNINSTALL}; or leave its arms out of --arms\n",
    )
    assert not tables.exists()  # nothing cached of it


def test_a_table_task_returns_a_codec_that_lied_rather_than_raise_it(faulty_transforms):
    """Dask runs a task that raised again, and the codec would only lie again."""
    from migcodec.selector import parse_arms
    from migcodec.selector.evaluation.cluster import (
        Refused,
        TableSettings,
        TraceSource,
        measure_range,
    )

    trace = Path(__file__).resolve().parents[2] / "corpus" / "traces" / "numpy"
    source = TraceSource("numpy", str(trace), "numpy", len(TraceReader(trace)))
    settings = TableSettings.of(parse_arms("raw;lying"), repeats=1)
    refused = measure_range(source, 0, 2, settings, (1,), False)
    assert isinstance(refused, Refused)
    assert str(refused.error) == (
        f"codec 'lying' decoded window 0's pages to other bytes than it encoded; {UNINSTALL}"
    )


def test_migrate_says_why_the_destination_refused_a_codec_whose_decode_raises(
    faulty_transforms, capsys
):
    """The destination runs in the same process: the source seeing it close the connection
    said to read the destination's own output, which no one sees."""
    from migcodec.cli import main

    assert main(["migrate", "--codec", "decode-raises", "--memory", "1MiB", "--quiet"]) == 1
    err = capsys.readouterr().err
    # the source may also have read the refusal before the connection closed: either way,
    # one line with the destination's reason
    assert err.startswith("migcodec migrate: the migration failed: ") and err.count("\n") == 1
    assert re.search(
        r"frame \d+, byte offset \d+: decode-raises failed on this payload: RuntimeError: no "
        r"such dictionary",
        err,
    ), err


@pytest.mark.parametrize(
    ("name", "what"),
    [("decode-exits", "SystemExit: 0"), ("decode-generator-exit", "GeneratorExit: closed")],
)
def test_a_decode_that_exits_is_a_corrupt_payload_not_a_silent_end(
    faulty_transforms, capsys, name, what
):
    """A plugin's decode raising ``SystemExit(0)`` ended ``receive`` with status 0 and no
    page written, and a ``GeneratorExit`` in a traceback: outside ``Exception``, neither
    was caught where a decode's failure becomes a wire error."""
    from migcodec.cli import main

    assert main(["migrate", "--codec", name, "--memory", "1MiB", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("migcodec migrate: the migration failed: ") and err.count("\n") == 1
    assert re.search(rf"byte offset \d+: {name} failed on this payload: {what}", err), err


def test_a_codec_whose_config_is_not_json_is_refused_before_a_stream_starts(faulty_classes):
    assert _refusal("bytes-config") == (
        "codec 'bytes-config' has a config that is not plain JSON ({'name': 'bytes-config', "
        "'key': b'\\x00'}: Object of type bytes is not JSON serializable); streams carry "
        f"codec configs as JSON; {UNINSTALL}"
    )


#: codecs whose call never returns (an endless loop, a hung library call) until ``RELEASE``
#: is set: ``stuck``'s every encode (it touches the file named by ``$STUCK_MARK``, if any,
#: once inside), ``stuck-on-batches``'s encode of more pages than a probe encodes (counted
#: in ``HANGS``), ``stuck-decode``'s decode and ``stuck-start``'s constructor
STUCK_PLUGIN = textwrap.dedent(
    """
    import os
    import pathlib
    import threading
    import zlib

    from migcodec.codecs import Codec

    RELEASE = threading.Event()
    HANGS = []  # a call that waits for RELEASE appends to it first

    class Stuck(Codec):
        name = "stuck"

        def encode_pages(self, pages):
            if os.environ.get("STUCK_MARK"):
                pathlib.Path(os.environ["STUCK_MARK"]).touch()
            RELEASE.wait()

        def decode_pages(self, blob, n_pages, page_size):
            return bytes(n_pages * page_size)

    class StuckOnBatches(Codec):
        name = "stuck-on-batches"

        def encode_pages(self, pages):
            if len(pages) > 32:
                HANGS.append(len(pages))
                RELEASE.wait()
            return None  # the pages go raw

        def decode_pages(self, blob, n_pages, page_size):
            return bytes(n_pages * page_size)

    class StuckStart(Stuck):
        name = "stuck-start"

        def __init__(self):
            RELEASE.wait()

    class StuckDecode(Codec):
        name = "stuck-decode"

        def encode_pages(self, pages):
            return zlib.compress(pages.tobytes(), 1)

        def decode_pages(self, blob, n_pages, page_size):
            RELEASE.wait()
            return zlib.decompress(blob)
    """
)


@pytest.fixture
def stuck_plugin(plugin_site: Path) -> Iterator[Path]:
    """The codecs of :data:`STUCK_PLUGIN`, from the package migcodec-stuck; released when
    the test ends, so that no thread of this process outlives it inside a codec."""
    write_dist(
        plugin_site,
        "migcodec-stuck",
        {
            "stuck": "migcodec_stuck_plugin:Stuck",
            "stuck-on-batches": "migcodec_stuck_plugin:StuckOnBatches",
            "stuck-decode": "migcodec_stuck_plugin:StuckDecode",
            "stuck-start": "migcodec_stuck_plugin:StuckStart",
        },
        {"migcodec_stuck_plugin": STUCK_PLUGIN},
    )
    yield plugin_site
    module = sys.modules.get("migcodec_stuck_plugin")
    if module is not None:
        module.RELEASE.set()


@pytest.fixture
def stuck_probe_plugin(plugin_site: Path) -> Iterator[Path]:
    """A codec, ``stuck-probe`` from the package migcodec-stuck-probe, whose probe never
    returns until the test ends: listing the plugins probes every one."""
    module = """
import threading

from migcodec.codecs import Codec

RELEASE = threading.Event()

class StuckProbe(Codec):
    name = "stuck-probe"

    @classmethod
    def probe(cls):
        RELEASE.wait()
        return super().probe()
"""
    write_dist(
        plugin_site,
        "migcodec-stuck-probe",
        {"stuck-probe": "migcodec_stuck_probe_plugin:StuckProbe"},
        {"migcodec_stuck_probe_plugin": module},
    )
    yield plugin_site
    loaded = sys.modules.get("migcodec_stuck_probe_plugin")
    if loaded is not None:
        loaded.RELEASE.set()


@pytest.mark.parametrize(
    ("command", "instead"),
    [(["codecs"], "uninstall it"), (["bench", "--pages", "64"], "name the others with --codecs")],
)
def test_listing_the_plugins_names_one_whose_probe_never_returns(
    stuck_probe_plugin, capsys, monkeypatch, command, instead
):
    """``migcodec codecs``, and ``bench`` of every available codec, probe every plugin:
    they waited for it forever."""
    from migcodec.cli import main
    from migcodec.codecs import stuck

    monkeypatch.setattr(stuck, "STUCK_AFTER_S", 0.5)
    assert within(30, main, command) == 2
    out, err = capsys.readouterr()
    stuck_probe = (
        "codec 'stuck-probe' \\(from the package migcodec-stuck-probe\\) has not returned from "
        f"{BUILDING} after \\d+\\.\\d s: the codec is stuck; report it to the authors of "
        f"migcodec-stuck-probe, or {instead}"
    )
    assert out == ""
    assert re.fullmatch(f"migcodec {command[0]}: {stuck_probe}\n", err), err


#: ``migcodec migrate`` with the stuck codec, on 1 MiB of memory
MIGRATE_STUCK = ["migrate", "--codec", "stuck", "--memory", "1MiB", "--quiet"]


def _stuck(instead: str, name: str = "stuck", call: str = "encode") -> str:
    """What a codec whose ``call`` has not returned is told to do, after how many seconds
    (a pattern)."""
    return (
        f"codec '{name}' \\(from the package migcodec-stuck\\) has not returned from {call} "
        r"after \d+\.\d s: the codec is stuck; report it to the authors of migcodec-stuck, "
        f"or {re.escape(instead)}"
    )


@pytest.mark.parametrize(
    ("name", "call"),
    [("stuck", "encode"), ("stuck-decode", "decode"), ("stuck-start", BUILDING)],
)
def test_bench_names_a_codec_that_never_returns(stuck_plugin, capsys, monkeypatch, name, call):
    """It waited for the codec forever: its encode, its decode (checking the round trip)
    or its constructor."""
    from migcodec.cli import main
    from migcodec.codecs import stuck

    monkeypatch.setattr(stuck, "STUCK_AFTER_S", 0.5)
    assert within(30, main, ["bench", "--codecs", name, "--pages", "64"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    expected = "migcodec bench: " + _stuck("leave it out of --codecs", name, call) + "\n"
    assert re.fullmatch(expected, err), err


#: what ``trace`` commands say to do about the codec that stores a trace
STORE = "store the trace with another --codec (zstd, the default, or lz4)"
#: ``migcodec trace synth`` of 2 windows of 64 pages of text
SYNTH = ["trace", "synth", "--workload", "text", "--pages", "64", "--windows", "2"]


@pytest.mark.parametrize(("name", "call"), [("stuck", "encode"), ("stuck-start", BUILDING)])
def test_trace_synth_names_a_storing_codec_that_never_returns(
    stuck_plugin, tmp_path, capsys, monkeypatch, name, call
):
    """It waited for the codec forever; now it ends naming the codec, and the trace it
    staged (a synthetic one is made again at will) is not kept."""
    from migcodec.cli import main
    from migcodec.codecs import stuck

    monkeypatch.setattr(stuck, "STUCK_AFTER_S", 0.5)
    trace = tmp_path / "t"
    assert within(30, main, [*SYNTH, "--out", str(trace), "--codec", name]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert re.fullmatch(f"migcodec trace synth: {_stuck(STORE, name, call)}\n", err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # the plugin's, no trace


@pytest.mark.parametrize("workers", [1, 2])
def test_a_trace_writer_names_a_codec_that_never_returns_and_is_not_held_by_it(
    stuck_plugin, tmp_path, monkeypatch, workers
):
    """Closing the writer waited for its encoding threads, one of them inside the codec
    for good: the stuck codec is named, and the trace is left unclosed at once."""
    from migcodec.codecs import CodecStuck, stuck
    from migcodec.datasets import Window, generate_pages
    from migcodec.datasets.trace import TraceWriter

    monkeypatch.setattr(stuck, "STUCK_AFTER_S", 0.5)
    pages = generate_pages("text", 2048, 0)  # two of the writer's batches

    def write() -> None:
        with TraceWriter(tmp_path / "t", memory_pages=2048, codec="stuck", workers=workers) as w:
            w.write(Window(0, np.arange(2048), pages))

    with pytest.raises(CodecStuck, match=_stuck(STORE)):
        within(30, write)
    assert TraceReader(tmp_path / "t", allow_incomplete=True).info().windows == 0


def test_trace_info_names_a_codec_that_never_returns(stuck_plugin, tmp_path, capsys, monkeypatch):
    """The trace's own codec's decode, and a codec of ``--codecs`` sampling ratios: each
    waited for forever, each now named with what to do about it."""
    from migcodec.cli import main
    from migcodec.codecs import stuck
    from migcodec.datasets import Window, generate_pages
    from migcodec.datasets.trace import TraceWriter

    pages = generate_pages("text", 64, 0)
    for codec in ("zstd", "stuck-decode"):
        with TraceWriter(tmp_path / codec, memory_pages=64, codec=codec) as writer:
            writer.write(Window(0, np.arange(64), pages))
    monkeypatch.setattr(stuck, "STUCK_AFTER_S", 0.5)
    info = ["trace", "info", str(tmp_path / "zstd"), "--codecs", "lz4,stuck"]
    assert within(30, main, info) == 2
    out, err = capsys.readouterr()
    assert out == ""
    leave = _stuck("leave it out of --codecs")
    assert re.fullmatch(f"migcodec trace info: {leave}\n", err), err
    assert within(30, main, ["trace", "info", str(tmp_path / "stuck-decode")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    record = _stuck("record the trace again with another --codec", "stuck-decode", "decode")
    assert re.fullmatch(f"migcodec trace info: {record}\n", err), err


#: ``migcodec evaluate`` of 2 windows of 64 pages of text
EVALUATE_STUCK = [*EVALUATE, "--workload", "text", "--windows", "2", "--pages", "64"]
#: seconds a codec call of these tests may last
STUCK_AFTER_S = 0.5
#: what evaluate says to do meanwhile about an arm whose codec is stuck
LEAVE = "leave its arms out of --arms"


def test_evaluate_names_a_trace_s_codec_whose_decode_never_returns(
    stuck_plugin, tmp_path, capsys, monkeypatch
):
    """A trace stored with a codec whose decode never returns held ``evaluate`` forever:
    the trace's windows are read in the bounded units that build the tables, and its
    decodes were not watched."""
    from migcodec.cli import main
    from migcodec.codecs import stuck
    from migcodec.datasets import Window, generate_pages
    from migcodec.datasets.trace import TraceWriter

    pages = generate_pages("text", 64, 0)
    with TraceWriter(tmp_path / "t", memory_pages=64, codec="stuck-decode") as writer:
        for i in range(2):
            writer.write(Window(i, np.arange(64), pages))
    monkeypatch.setattr(stuck, "STUCK_AFTER_S", STUCK_AFTER_S)
    assert within(30, main, [*EVALUATE, str(tmp_path / "t"), "--arms", "raw;lz4"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    stuck = _stuck("record the trace again with another --codec", "stuck-decode", "decode")
    trace = re.escape(f"trace {tmp_path / 't'}: ")
    assert re.fullmatch(f"migcodec evaluate: {trace}{stuck}\n", err), err


@pytest.mark.parametrize(
    ("arms", "name", "call"),
    [
        ("raw;lz4;stuck", "stuck", "encode"),  # timing its probes, before any window
        ("raw;stuck-on-batches", "stuck-on-batches", "encode"),  # encoding window 0
        ("raw;stuck-decode", "stuck-decode", "decode"),  # checking window 0's round trip
        ("raw;stuck-start", "stuck-start", BUILDING),  # parsing the arms
    ],
)
def test_evaluate_names_an_arm_whose_codec_never_returns(
    stuck_plugin, capsys, monkeypatch, arms, name, call
):
    """It waited for the codec forever; now it gives up on it as ``bench`` does, and says
    to leave its arms out once."""
    from migcodec.cli import main
    from migcodec.codecs import stuck

    monkeypatch.setattr(stuck, "STUCK_AFTER_S", STUCK_AFTER_S)
    assert within(30, main, [*EVALUATE_STUCK, "--arms", arms]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert re.fullmatch(f"migcodec evaluate: {_stuck(LEAVE, name, call)}\n", err), err


def test_evaluate_names_an_arm_whose_codec_never_returns_as_it_is_calibrated(
    stuck_plugin, capsys, monkeypatch
):
    """``--cost-model calibrated`` encodes every arm before any table is measured."""
    from migcodec.cli import main
    from migcodec.codecs import stuck

    monkeypatch.setattr(stuck, "STUCK_AFTER_S", STUCK_AFTER_S)
    calibrated = ["--cost-model", "calibrated", "--arms", "stuck"]
    assert within(30, main, [*EVALUATE_STUCK, *calibrated]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert re.fullmatch(f"migcodec evaluate: {_stuck(LEAVE)}\n", err), err


def _shorten_bound(seconds: float) -> None:
    """Give codec calls ``seconds`` in this process (run on a cluster's workers)."""
    from migcodec.codecs import stuck

    stuck.STUCK_AFTER_S = seconds


def _release_stuck_codecs() -> int:
    """Release the stuck codecs of this process (run on a cluster's workers); how many
    calls hung in them."""
    module = sys.modules.get("migcodec_stuck_plugin")
    if module is None:
        return 0
    module.RELEASE.set()
    return len(module.HANGS)


def test_evaluate_on_a_cluster_names_an_arm_whose_codec_never_returns_once(
    stuck_plugin, capsys, tmp_path
):
    """Its table task held the worker forever; now it ends after the bound and ends the
    evaluation, naming the task, without being run again as a task that raises is."""
    from migcodec.cli import main
    from tests.selector.test_distributed_evaluation import local_cluster

    trace = Path(__file__).resolve().parents[2] / "corpus" / "traces" / "numpy"
    windows = len(TraceReader(trace))
    on_cluster = ["--scheduler", "", "--task-windows", str(windows)]  # one task per arm
    on_cluster += ["--table-dir", str(tmp_path / "tables")]
    # its worker, started now, sees the plugins
    with local_cluster(1, logging.CRITICAL) as running, running.get_client() as client:
        on_cluster[1] = running.scheduler_address
        client.run(_shorten_bound, STUCK_AFTER_S)
        try:
            arms = ["--arms", "raw;stuck-on-batches"]
            code = within(60, main, [*EVALUATE, str(trace), *on_cluster, *arms])
        finally:
            hangs = client.run(_release_stuck_codecs)
    out, err = capsys.readouterr()
    assert (code, out, list(hangs.values())) == (2, "", [1])
    task = re.escape(f"measuring numpy windows 0-{windows} (stuck-on-batches): ")
    stuck = _stuck(LEAVE, "stuck-on-batches")
    assert re.fullmatch(f"dask: .*\nmigcodec evaluate: {task}{stuck}\n", err), err


def test_a_cluster_worker_names_an_arm_whose_constructor_never_returns(stuck_plugin, monkeypatch):
    """The check a worker runs before any table task (``client.run``, on its event loop)
    held the worker, and the evaluation, forever."""
    from migcodec.codecs import stuck
    from migcodec.selector.evaluation.cluster import Cluster, SchedulerError, worker_check

    monkeypatch.setattr(stuck, "STUCK_AFTER_S", STUCK_AFTER_S)
    arms = ((("name", "raw"),), (("name", "stuck-start"),))  # as TableSettings holds them
    answer = within(30, worker_check, arms)
    assert answer["problems"] == []
    assert re.fullmatch(_stuck(LEAVE, "stuck-start", BUILDING), answer["stuck"]), answer
    # refused in the stuck codec's words alone: it was told, besides, to install the same
    # codecs on every host (it is installed) and to leave its arms out a second time
    client = SimpleNamespace(run=lambda check, arms: {"tcp://w:1": answer})
    with pytest.raises(SchedulerError) as refused:
        Cluster.check_workers(SimpleNamespace(client=client), SimpleNamespace(arms=arms))
    assert str(refused.value) == f"worker tcp://w:1: {answer['stuck']}"


@pytest.mark.parametrize(
    ("codec", "failure"),
    [
        ("stuck", "did not finish within its 1 s time limit: " + _stuck("choose another --codec")),
        (
            "stuck-decode",
            "destination failed: " + _stuck("choose another --codec", "stuck-decode", "decode"),
        ),
    ],
)
def test_migrate_with_a_codec_that_never_returns_fails_in_seconds(
    stuck_plugin, tmp_path, codec, failure
):
    """It waited for the codec forever, --max-time or not; now it fails in one line, and
    the process exits with the codec's thread still inside its call. A codec whose encode
    never returns is waited for until the time limit; one whose decode never returns (the
    destination's: it never answers) until a few seconds past it, when the source stops
    waiting for its verdict."""
    migrate = subprocess.run(
        [*migcodec_command(), *MIGRATE_STUCK, "--codec", codec, "--max-time", "1"],
        capture_output=True,
        text=True,
        timeout=60,  # a bound on a hang, not a timing
        env=subprocess_env(tmp_path / "cache", stuck_plugin),
    )
    assert migrate.returncode == 1, migrate.stderr
    assert re.fullmatch(f"migcodec migrate: the migration failed: {failure}\n", migrate.stderr), (
        migrate.stderr
    )


@pytest.mark.parametrize("bound", [["--deadline", "1"], ["--timeout", "1"]])
def test_receive_with_a_codec_whose_decode_never_returns_ends_by_its_deadline(
    stuck_plugin, tmp_path, bound
):
    """The connection's timeouts bound every read, and --deadline the whole migration, but
    a decode that never returned held ``receive`` forever (and its source, waiting for the
    verdict, until its own deadline). Now the receiver names the codec a few seconds past
    its deadline or its --timeout (a decode that never returns reads nothing from the
    source: it waited for the whole --deadline, an hour by default) and exits 1 (the
    migration failed, as for a stream that broke), the file it received into not left as
    an image."""
    env = subprocess_env(tmp_path / "cache", stuck_plugin)
    received = tmp_path / "received.img"
    receive = ["receive", "--listen", "127.0.0.1:0", *bound]
    receiver = subprocess.Popen(
        [*migcodec_command(), *receive, "--memory-file", str(received)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        listening = receiver.stdout.readline()
        port = listening.rsplit(":", 1)[1].strip()
        send = ["send", "--connect", f"127.0.0.1:{port}", "--codec", "stuck-decode"]
        sender = subprocess.run(
            [*migcodec_command(), *send, "--memory", "1MiB", "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,  # a bound on a hang, not a timing
            env=env,
        )
        _, err = receiver.communicate(timeout=60)
    finally:
        receiver.kill()
    stuck = _stuck("send with another --codec", "stuck-decode", "decode")
    assert receiver.returncode == 1 and re.fullmatch(f"migcodec receive: {stuck}\n", err), err
    assert sender.returncode == 1, sender.stderr
    assert not received.exists()


def test_migrate_with_a_codec_whose_constructor_never_returns_fails_naming_it(
    stuck_plugin, capsys, monkeypatch
):
    """Building the codec waited for it forever, --max-time or not (the time limit runs
    from the migration's start, after the codecs are built)."""
    from migcodec.cli import main
    from migcodec.codecs import stuck

    monkeypatch.setattr(stuck, "STUCK_AFTER_S", 0.5)
    migrate = ["migrate", "--codec", "stuck-start", "--memory", "1MiB", "--quiet"]
    assert within(30, main, [*migrate, "--max-time", "60"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    expected = _stuck("choose another --codec", "stuck-start", BUILDING)
    assert re.fullmatch(f"migcodec migrate: {expected}\n", err), err


@pytest.mark.parametrize(
    ("sig", "word"), [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")]
)
def test_a_signal_while_a_codec_never_returns_ends_migrate_in_seconds(
    stuck_plugin, tmp_path, shm_name, sig, word
):
    """The teardown waited for the codec with signals held, so only SIGKILL ended it; now
    it waits a few seconds, leaves the region mapped for the codec's thread (unmapped, its
    next read would crash the process) and removes its name, and exits as Ctrl-C does,
    naming the codec that held it (a user who pressed Ctrl-C at a migration that seemed to
    hang was told only that it was interrupted)."""
    mark = tmp_path / "inside-encode"
    env = {**subprocess_env(tmp_path / "cache", stuck_plugin), "STUCK_MARK": str(mark)}
    migrate = subprocess.Popen(
        [*migcodec_command(), *MIGRATE_STUCK, "--shm", shm_name, "--max-time", "600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while not mark.exists() and migrate.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mark.exists(), "the codec was never inside encode"
        migrate.send_signal(sig)
        out, err = migrate.communicate(timeout=30)  # a bound on a hang, not a timing
    finally:
        migrate.kill()
    held = (
        "; codec 'stuck' (from the package migcodec-stuck) had not returned from a call: "
        "report it to the authors of migcodec-stuck"
    )
    assert (migrate.returncode, out, err) == (128 + sig, "", f"migcodec migrate: {word}{held}\n")
    assert not os.path.exists(f"/dev/shm/{shm_name}")
