"""The example plugin in ``examples/migcodec-rle``, registered like an installed package.

It is listed by ``migcodec codecs``, named in a wire preamble, refused by a destination that
lacks it, round-tripped through FrameWriter / FrameReader, and its codec round-trips any
pages and survives any blob.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcodec.codecs import Batch, DecodeError, Encoded, PageMode, get_codec
from migcodec.wire import FrameReader, FrameWriter, memory_digest
from tests.plugin_dist import (
    REPO,
    clear_entry_point_caches,
    migcodec_command,
    subprocess_env,
    write_dist,
)
from tests.roundtrip import assert_round_trips_only_the_named_pages

EXAMPLE = REPO / "examples" / "migcodec-rle"
SRC = EXAMPLE / "src"
PAGE = 4096


def _load_example():
    """The example module, loaded from its file without touching ``sys.path``."""
    spec = importlib.util.spec_from_file_location(
        "_migcodec_rle_under_test", SRC / "migcodec_rle" / "__init__.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rle = _load_example()


def example_entry_points() -> dict[str, str]:
    """The ``migcodec.codecs`` entry points the example's pyproject.toml declares."""
    text = (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: read the one table by hand
        table = text.split('[project.entry-points."migcodec.codecs"]', 1)[1].split("\n[", 1)[0]
        return dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]+)"', table, re.M))
    return tomllib.loads(text)["project"]["entry-points"]["migcodec.codecs"]


@pytest.fixture
def rle_installed(plugin_site: Path) -> Iterator[Path]:
    """The example "installed": its dist-info in ``plugin_site``, its source on sys.path."""
    write_dist(plugin_site, "migcodec-rle", example_entry_points())
    sys.path.insert(0, str(SRC))
    try:
        yield plugin_site
    finally:
        sys.path.remove(str(SRC))
        for name in [m for m in sys.modules if m.split(".")[0] == "migcodec_rle"]:
            del sys.modules[name]


def test_pyproject_declares_the_entry_point():
    assert example_entry_points() == {"rle": "migcodec_rle:RunLengthCodec"}


def test_listed_by_migcodec_codecs(rle_installed, tmp_path):
    out = subprocess.run(
        [*migcodec_command(), "codecs", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=subprocess_env(tmp_path / "cache", rle_installed, SRC),
    )
    by_name = {entry["name"]: entry for entry in json.loads(out.stdout)}
    assert by_name["rle"] == {
        "name": "rle",
        "kind": "compress",
        "available": True,
        "path": "software",
        "reason": "runs on the CPU",
        "source": "migcodec_rle:RunLengthCodec",
    }
    assert {"raw", "lz4", "zlib-ng", "zstd"} <= set(by_name)


def guest_memory(n_pages: int = 48) -> np.ndarray:
    """Pages run-length encoding is good at, plus zero and random pages."""
    rng = np.random.default_rng(5)
    memory = np.zeros((n_pages, PAGE), np.uint8)
    for page in range(n_pages):
        kind = page % 4
        if kind == 1:  # a few long runs: memset buffers, slab zero tails
            cuts = np.sort(rng.integers(0, PAGE, 6))
            for value, (a, b) in enumerate(itertools.pairwise(cuts), start=1):
                memory[page, a:b] = value * 40
        elif kind == 2:
            memory[page] = rng.integers(0, 256, PAGE, dtype=np.uint8)
        elif kind == 3:
            memory[page, : PAGE // 2] = page
    return memory


def test_named_in_a_preamble_and_round_tripped_through_the_wire(rle_installed):
    rle_codec = get_codec({"name": "rle", "max_run": 1000})
    assert type(rle_codec).__module__ == "migcodec_rle"  # loaded through the entry point
    memory = guest_memory()
    out = io.BytesIO()
    writer = FrameWriter(out, PAGE, memory.shape[0], [rle_codec, get_codec("lz4")])
    modes = []
    for runs in ([(0, 8), (40, 8)], [(17, 3), (8, 9)], [(20, 20)]):
        encoded = rle_codec.encode(Batch(memory, runs))
        modes += encoded.modes.tolist()
        writer.write_batch(encoded)
    writer.end_iteration(0, memory.shape[0])
    writer.end_stream(memory_digest(memory))
    assert {PageMode.ZERO, PageMode.RAW, PageMode.ENCODED} <= set(modes)

    data = out.getvalue()
    reader = FrameReader(io.BytesIO(data))  # resolves codecs through the real registry
    assert reader.preamble.codecs[0] == {"name": "rle", "max_run": 1000}
    assert reader.codecs[0] == rle_codec
    dest = np.full_like(memory, 0xA5)
    summary = reader.receive(dest)
    np.testing.assert_array_equal(dest, memory)
    assert summary.digest_verified
    assert summary.pages_by_codec == {"rle": memory.shape[0]}


_READ_WITHOUT_PLUGIN = textwrap.dedent(
    """
    import io, sys
    from migcodec.wire import CodecMissing, FrameReader
    try:
        FrameReader(io.BytesIO(sys.stdin.buffer.read()))
    except CodecMissing as exc:
        print(exc)
    """
)


def test_a_destination_without_the_plugin_refuses_the_stream_naming_the_package(
    rle_installed, tmp_path
):
    out = io.BytesIO()
    FrameWriter(out, PAGE, 8, [get_codec("raw"), get_codec("rle")]).end_stream()
    result = subprocess.run(
        [sys.executable, "-c", _READ_WITHOUT_PLUGIN],
        input=out.getvalue(),
        capture_output=True,
        check=True,
        timeout=60,
        env=subprocess_env(tmp_path / "cache"),  # the plugin is not on this path
    )
    assert result.stdout.decode() == (
        "preamble: cannot decode codec id 1 of the peer's codec table ('rle'): no codec named "
        "'rle' is installed here; install the Python package 'migcodec-rle', which provides "
        "it on the source\n"
    )


def test_the_preamble_names_the_package_of_a_plugin_and_only_then_is_version_2(rle_installed):
    plugin, builtin = io.BytesIO(), io.BytesIO()
    FrameWriter(plugin, PAGE, 8, [get_codec("raw"), get_codec("rle")])
    FrameWriter(builtin, PAGE, 8, [get_codec("raw"), get_codec("lz4")])
    # migcodec's own codecs: version 1, byte for byte what older readers read
    assert int.from_bytes(builtin.getvalue()[8:10], "little") == 1
    assert int.from_bytes(plugin.getvalue()[8:10], "little") == 2
    reader = FrameReader(io.BytesIO(plugin.getvalue()))
    assert reader.preamble.version == 2
    assert reader.preamble.packages == {1: "migcodec-rle"}
    assert FrameReader(io.BytesIO(builtin.getvalue())).preamble.packages == {}


def test_a_plugin_installed_after_a_package_was_looked_up_is_named(plugin_site):
    """Which package registers a codec is read once per list of entry points stevedore
    holds: a process that named packages before a plugin was installed, then read the
    entry points again, names the new plugin's package too."""
    from migcodec.codecs import registry

    # the installed packages' providers read while no package registers rle
    assert registry._provider(registry._listed()[0]) in (None, "migcodec")
    write_dist(plugin_site, "migcodec-rle", example_entry_points())
    sys.path.insert(0, str(SRC))
    try:
        clear_entry_point_caches()  # what reading the entry points again does
        assert registry.codec_package(get_codec("rle")) == "migcodec-rle"
    finally:
        sys.path.remove(str(SRC))
        for name in [m for m in sys.modules if m.split(".")[0] == "migcodec_rle"]:
            del sys.modules[name]


def test_send_to_a_receiver_without_the_plugin_is_refused_naming_the_package(
    rle_installed, tmp_path, capsys
):
    from migcodec.cli import main

    receiver = subprocess.Popen(
        [*migcodec_command(), "receive", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(tmp_path / "cache"),  # the plugin is not on this path
    )
    try:
        port = receiver.stdout.readline().rsplit(":", 1)[1].strip()
        address = f"127.0.0.1:{port}"
        code = main(["send", "--connect", address, "--memory", "1MiB", "--codec", "rle", "--quiet"])
        out, err = receiver.communicate(timeout=60)
    finally:
        receiver.kill()
    refusal = (
        "cannot decode codec id 0 of the peer's codec table ('rle'): no codec named 'rle' is "
        "installed here; install the Python package 'migcodec-rle', which provides it on the "
        "source"
    )
    assert (receiver.returncode, out) == (1, "")
    assert err == f"migcodec receive: preamble: {refusal}\n"
    assert code == 1
    assert capsys.readouterr().err == (
        f"migcodec send: destination refused the stream: {refusal!r}\n"
    )


# -- the codec itself ---------------------------------------------------------------
@st.composite
def pages_and_runs(draw, n_pages: int = 24):
    """Memory of zero, constant, striped, sparse and random pages, and scattered runs."""
    memory = np.zeros((n_pages, PAGE), np.uint8)
    for page in range(n_pages):
        kind = draw(st.integers(0, 4))
        if kind == 1:
            memory[page] = draw(st.integers(1, 255))
        elif kind == 2:
            width = draw(st.integers(1, 700))
            memory[page] = (np.arange(PAGE) // width % 3 + 1).astype(np.uint8)
        elif kind == 3:
            spots = draw(st.lists(st.integers(0, PAGE - 1), max_size=6))
            memory[page, spots] = 7
        elif kind == 4:
            seed = draw(st.integers(0, 2**32 - 1))
            memory[page] = np.random.default_rng(seed).integers(0, 256, PAGE, dtype=np.uint8)
    starts = draw(st.lists(st.integers(0, n_pages - 1), min_size=1, max_size=6, unique=True))
    runs = [(s, 1) for s in starts]
    return memory, draw(st.permutations(runs))


@given(case=pages_and_runs(), max_run=st.sampled_from([1, 3, 255, 4096, rle.MAX_RUN]))
def test_codec_round_trips_exactly_the_named_pages(case, max_run):
    memory, runs = case
    assert_round_trips_only_the_named_pages(rle.RunLengthCodec(max_run=max_run), memory, runs)


@given(
    data=st.binary(max_size=3000).map(lambda b: np.frombuffer(b, np.uint8)),
    max_run=st.integers(1, 300),
)
def test_run_splitting_round_trips_any_bytes(data, max_run):
    blob = rle.rle_encode(data, max_run)
    count = int(np.frombuffer(blob[:4], "<u4")[0])
    lengths = np.frombuffer(blob[4 + count :], "<u2").astype(np.int64) + 1
    assert (lengths <= max_run).all()
    assert bytes(rle.rle_decode(blob, data.size)) == data.tobytes()


def test_long_runs_are_split_and_compress():
    memory = np.full((16, PAGE), 9, np.uint8)
    encoded = rle.RunLengthCodec().encode(Batch(memory, [(0, 16)]))
    assert encoded.modes.tolist() == [PageMode.ENCODED] * 16
    # 65536 bytes of one value: exactly one run of the maximum length
    assert encoded.payload == b"\x01\x00\x00\x00" + b"\x09" + b"\xff\xff"


def test_pages_that_cannot_shrink_go_raw_without_building_a_blob():
    memory = np.random.default_rng(3).integers(0, 256, (8, PAGE), dtype=np.uint8)
    codec = rle.RunLengthCodec()
    assert codec.encode_pages(memory) is None
    encoded = codec.encode(Batch(memory, [(0, 8)]))
    assert (encoded.modes == PageMode.RAW).all()
    assert encoded.payload == memory.tobytes()


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "rle blob of 0 bytes has no run count"),
        (b"\x01\x00", "rle blob of 2 bytes has no run count"),
        (
            b"\xff\xff\xff\xff\x00",
            "rle blob of 5 bytes cannot hold the 4294967295 runs it announces (12884901889 bytes)",
        ),
        (b"\x01\x00\x00\x00\x07\xff\x00", "rle runs cover 256 bytes where 4096 were expected"),
        (
            b"\x02\x00\x00\x00\x07\x08\xff\xff\xff\xff",
            "rle runs cover 131072 bytes where 4096 were expected",
        ),
    ],
)
def test_malformed_blobs_are_decode_errors(blob, message):
    with pytest.raises(DecodeError) as info:
        rle.rle_decode(blob, PAGE)
    assert str(info.value) == message


@given(blob=st.binary(max_size=200), n_pages=st.integers(1, 3))
def test_any_blob_decodes_exactly_or_is_refused_without_touching_memory(blob, n_pages):
    codec = rle.RunLengthCodec()
    dest = np.full((8, PAGE), 0xA5, np.uint8)
    runs = np.array([[2, n_pages]], np.int64)
    modes = np.full(n_pages, PageMode.ENCODED, np.uint8)
    try:
        codec.decode(Encoded("rle", PAGE, runs, modes, (blob,)), dest)
    except DecodeError:
        assert (dest == 0xA5).all()
    else:
        assert (dest[:2] == 0xA5).all() and (dest[2 + n_pages :] == 0xA5).all()


def test_config_round_trip_and_validation():
    codec = rle.RunLengthCodec(max_run=300)
    assert codec.get_config() == {"name": "rle", "max_run": 300}
    assert rle.RunLengthCodec.from_config(json.loads(json.dumps(codec.get_config()))) == codec
    for bad in (0, rle.MAX_RUN + 1, True, 2.5):
        with pytest.raises(ValueError) as info:
            rle.RunLengthCodec(max_run=bad)
        assert str(info.value) == f"rle max_run must be an integer 1..65536, got {bad!r}"
