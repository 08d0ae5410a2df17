"""The registry: finding codecs by name or config, and reporting plugins that cannot run.

Third-party plugins are registered with ``plugin_site`` (a directory with ``.dist-info``
metadata on ``sys.path``), exactly as pip would register them, but without installing.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import stevedore._cache

from migcodec.codecs import (
    Batch,
    CodecNotFound,
    CodecUnavailable,
    available_codecs,
    get_codec,
    load_codec_class,
    plugin_statuses,
)
from migcodec.codecs.registry import PluginStatus
from migcodec.datasets import generate_pages
from tests.plugin_dist import migcodec_command, subprocess_env, write_dist

BUILTIN = ["lz4", "raw", "zlib-ng", "zstd"]

CONFIGS = [
    {"name": "raw"},
    {"name": "lz4", "acceleration": 1},
    {"name": "lz4", "acceleration": 17},
    {"name": "zlib-ng", "level": 1, "wbits": -15},
    {"name": "zlib-ng", "level": 6, "wbits": 31},
    {"name": "zstd", "level": 1},
    {"name": "zstd", "level": -7},
    {"name": "zstd", "level": 19},
]


def test_builtins_are_registered_through_entry_points():
    assert set(BUILTIN) <= set(available_codecs())
    assert available_codecs() == sorted(available_codecs())


def test_get_codec_by_name_config_or_instance():
    lz4 = get_codec("lz4")
    assert lz4.get_config() == {"name": "lz4", "acceleration": 1}
    assert get_codec("zstd", level=-5).get_config() == {"name": "zstd", "level": -5}
    assert get_codec({"name": "zstd", "level": 3}).get_config() == {"name": "zstd", "level": 3}
    assert get_codec({"name": "zstd"}, level=4).get_config() == {"name": "zstd", "level": 4}
    assert get_codec(lz4) is lz4
    assert load_codec_class("zlib-ng").name == "zlib-ng"


def test_unknown_codec_names_what_is_installed():
    with pytest.raises(CodecNotFound) as info:
        get_codec("qpl-deflate")
    assert isinstance(info.value, LookupError)
    assert str(info.value) == (
        f"no codec named 'qpl-deflate' is installed (installed: {', '.join(available_codecs())})"
        "; a third-party codec is installed as a package with a 'migcodec.codecs' entry point"
    )


def test_config_without_a_name():
    with pytest.raises(CodecNotFound) as info:
        get_codec({"level": 1})
    assert str(info.value) == "codec config {'level': 1} has no 'name'"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"name": "lz4", "speed": 3},
            "bad config for codec 'lz4': it has no parameter 'speed'; it takes: acceleration",
        ),
        # a constructor passing **kwargs on: the parameters its base class takes count too
        (
            {"name": "dsa-delta", "nope": 1},
            "bad config for codec 'dsa-delta': it has no parameter 'nope'; it takes: "
            "max_record_size, fallback",
        ),
        ({"name": "raw", "level": 1}, "bad config for codec 'raw': it has no parameter 'level'; "),
        ({"name": "zstd", "level": 0}, "zstd level must be a non-zero integer"),
        ({"name": "zlib-ng", "level": 10}, "zlib-ng level must be an integer 0..9, got 10"),
        ({"name": "zlib-ng", "wbits": 8}, "zlib-ng wbits must be -15..-9, 9..15 or 25..31"),
        (
            {"name": "lz4", "acceleration": 0},
            "lz4 acceleration must be an integer 1..2147483647, got 0",
        ),
        (  # beyond a C int: accepted, then every encode failed with an OverflowError
            {"name": "lz4", "acceleration": 2**31},
            "lz4 acceleration must be an integer 1..2147483647, got 2147483648",
        ),
    ],
)
def test_bad_configs_are_value_errors_that_say_what_is_wrong(config, message):
    with pytest.raises(ValueError) as info:
        get_codec(config)
    assert str(info.value).startswith(message)


def test_from_config_refuses_another_codecs_config():
    with pytest.raises(ValueError) as info:
        load_codec_class("lz4").from_config({"name": "zstd", "level": 1})
    assert str(info.value) == "config names codec 'zstd', not 'lz4'"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: json.dumps(c, sort_keys=True))
def test_config_round_trips_through_json_and_fully_describes_the_codec(config):
    codec = get_codec(config)
    assert codec.get_config() == config
    again = get_codec(json.loads(json.dumps(codec.get_config())))
    assert again == codec and hash(again) == hash(codec)
    assert again is not codec
    assert type(codec).from_config(codec.get_config()) == codec
    assert codec.config_json() == json.dumps(config, sort_keys=True, separators=(",", ":"))
    # equal configs encode identically: a stream or trace can name the codec exactly
    memory = generate_pages("memcached", 16, 1)
    batch = Batch(memory, [(0, 8), (10, 4)])
    assert again.encode(batch).payload == codec.encode(batch).payload


def test_every_registered_plugin_round_trips_its_default_config():
    for name in available_codecs():
        codec = get_codec(name)
        config = json.loads(json.dumps(codec.get_config()))
        assert config["name"] == name
        assert get_codec(config) == codec


def test_equality_is_config_equality():
    assert get_codec("zstd", level=3) == get_codec({"name": "zstd", "level": 3})
    assert get_codec("zstd", level=3) != get_codec("zstd", level=4)
    assert get_codec("lz4") != get_codec("zstd")
    assert len({get_codec("zstd", level=3), get_codec("zstd", level=3), get_codec("lz4")}) == 2


_LIST_WITHOUT_IMPORTING = textwrap.dedent(
    """
    import json, sys
    import migcodec.codecs as codecs
    heavy = ("lz4", "zstandard", "zlib_ng")

    def loaded():
        return sorted(m for m in sys.modules
                      if m.startswith("migcodec.codecs.plugins.") or m.split(".")[0] in heavy)

    before = loaded()
    names = codecs.available_codecs()
    after_listing = loaded()
    codecs.plugin_statuses()
    print(json.dumps([names, before, after_listing, loaded()]))
    """
)


def test_listing_names_imports_no_plugin_module(tmp_path):
    """In a fresh interpreter: listing imports nothing; loading statuses does (so this
    test would notice if listing started to load plugins)."""
    out = subprocess.run(
        [sys.executable, "-c", _LIST_WITHOUT_IMPORTING],
        capture_output=True,
        text=True,
        check=True,
        env=subprocess_env(tmp_path / "cache"),
        timeout=60,
    )
    names, before, after_listing, after_statuses = json.loads(out.stdout)
    assert set(BUILTIN) <= set(names)
    assert before == [] and after_listing == []
    assert {"migcodec.codecs.plugins.lz4", "lz4", "zstandard", "zlib_ng"} <= set(after_statuses)


# -- third-party plugins that are broken or cannot run --------------------------------
PROBE_UNAVAILABLE = textwrap.dedent(
    """
    from migcodec.codecs import Codec, Probe

    class QatCodec(Codec):
        name = "qat-test"
        kind = "compress"

        @classmethod
        def probe(cls):
            return Probe(False, "unavailable", "no QAT device (/dev/qat_adf_ctl missing)")

        def encode_pages(self, pages):
            raise NotImplementedError

        def decode_pages(self, blob, n_pages, page_size):
            raise NotImplementedError

    class ProbeRaises(QatCodec):
        name = "probe-raises"

        @classmethod
        def probe(cls):
            raise OSError("ioctl failed")

    NotACodec = object
    """
)


#: a plugin written for the earlier contract: refused when its class is defined
OLD_HOOKS = textwrap.dedent(
    """
    from migcodec.codecs import Codec, PageEncoding

    class OldCodec(Codec):
        name = "old-hooks"

        def _encode_pages(self, pages, indices):
            return PageEncoding(pages.tobytes())

        def _decode_pages(self, blob, modes, current, page_size):
            return bytes(blob)
    """
)

_OLD_HOOKS_REFUSAL = (
    "codec class migcodec_old_hooks_test.OldCodec implements _encode_pages, _decode_pages, "
    "hooks of an earlier migcodec codec contract; rename and reshape them: _encode_pages -> "
    "encode_pages(self, pages) -> blob (or None: send the pages raw); _decode_pages -> "
    "decode_pages(self, blob, n_pages, page_size) -> n_pages * page_size bytes "
    "(examples/migcodec-rle is a complete codec)"
)


@pytest.fixture
def broken_plugins(plugin_site: Path) -> Path:
    """One distribution with a plugin per failure mode, next to the real built-ins."""
    write_dist(
        plugin_site,
        "migcodec-broken",
        {
            "missing-dep": "migcodec_missing_dep_test:Codec",
            "missing-lib": "migcodec_missing_lib_test:Codec",
            "qat-test": "migcodec_probe_test:QatCodec",
            "probe-raises": "migcodec_probe_test:ProbeRaises",
            "not-a-codec": "migcodec_probe_test:NotACodec",
            "old-hooks": "migcodec_old_hooks_test:OldCodec",
        },
        {
            "migcodec_missing_dep_test": "import qatzip_sdk_for_tests  # not installed\n",
            "migcodec_missing_lib_test": (
                "raise ImportError('libqpl.so.1: cannot open shared object file')\n"
            ),
            "migcodec_probe_test": PROBE_UNAVAILABLE,
            "migcodec_old_hooks_test": OLD_HOOKS,
        },
    )
    return plugin_site


EXPECTED_BROKEN = {
    "missing-dep": PluginStatus(
        "missing-dep",
        "?",
        False,
        "unavailable",
        "failed to load: ModuleNotFoundError: No module named 'qatzip_sdk_for_tests'; "
        "pip install qatzip_sdk_for_tests",
        "migcodec_missing_dep_test:Codec",
    ),
    "missing-lib": PluginStatus(
        "missing-lib",
        "?",
        False,
        "unavailable",
        "failed to load: ImportError: libqpl.so.1: cannot open shared object file; "
        "reinstall the package that provides it: pip install --force-reinstall migcodec-broken",
        "migcodec_missing_lib_test:Codec",
    ),
    "qat-test": PluginStatus(
        "qat-test",
        "compress",
        False,
        "unavailable",
        "no QAT device (/dev/qat_adf_ctl missing)",
        "migcodec_probe_test:QatCodec",
    ),
    "probe-raises": PluginStatus(
        "probe-raises",
        "compress",
        False,
        "unavailable",
        "probe failed: OSError: ioctl failed",
        "migcodec_probe_test:ProbeRaises",
    ),
    "not-a-codec": PluginStatus(
        "not-a-codec",
        "?",
        False,
        "unavailable",
        "not a Codec subclass",
        "migcodec_probe_test:NotACodec",
    ),
    "old-hooks": PluginStatus(
        "old-hooks",
        "?",
        False,
        "unavailable",
        f"failed to load: OutdatedPlugin: {_OLD_HOOKS_REFUSAL}; install a version written for "
        "this migcodec: pip install --upgrade migcodec-broken",
        "migcodec_old_hooks_test:OldCodec",
    ),
}


def test_listing_a_broken_plugin_does_not_import_it(broken_plugins):
    assert set(EXPECTED_BROKEN) | set(BUILTIN) <= set(available_codecs())
    assert "migcodec_missing_dep_test" not in sys.modules


def test_broken_plugins_are_reported_with_reason_and_hint_without_hiding_others(broken_plugins):
    statuses = {s.name: s for s in plugin_statuses()}
    for name, expected in EXPECTED_BROKEN.items():
        assert statuses[name] == expected
    for name in BUILTIN:
        assert statuses[name].available, statuses[name]
        assert statuses[name].path == "software"
    # and the healthy codecs still work in the same process
    assert get_codec("zstd").get_config() == {"name": "zstd", "level": 1}


def test_get_codec_of_broken_plugins_says_what_to_do(broken_plugins):
    with pytest.raises(CodecUnavailable) as info:
        get_codec("missing-dep")
    assert str(info.value) == (
        "codec 'missing-dep' failed to load (ModuleNotFoundError: No module named "
        "'qatzip_sdk_for_tests'); pip install qatzip_sdk_for_tests"
    )
    with pytest.raises(CodecUnavailable) as info:
        get_codec("qat-test")
    assert str(info.value) == (
        "codec 'qat-test' cannot run here: no QAT device (/dev/qat_adf_ctl missing)"
    )
    with pytest.raises(CodecUnavailable) as info:
        get_codec("not-a-codec")
    assert str(info.value).startswith("entry point 'not-a-codec' does not name a migcodec Codec")
    with pytest.raises(CodecUnavailable) as info:
        get_codec("old-hooks")
    assert str(info.value) == (
        f"codec 'old-hooks' failed to load (OutdatedPlugin: {_OLD_HOOKS_REFUSAL}); install a "
        "version written for this migcodec: pip install --upgrade migcodec-broken"
    )


def test_migcodec_codecs_reports_broken_plugins(broken_plugins, tmp_path):
    env = subprocess_env(tmp_path / "cache", broken_plugins)

    def codecs(*flags: str) -> str:
        command = [*migcodec_command(), "codecs", *flags]
        return subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=60, check=True
        ).stdout

    text = codecs()
    table, footer = text.split("\n\n")
    lines = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert footer.startswith("zero-page detection (every codec): ")
    assert "pip install qatzip_sdk_for_tests" in lines["missing-dep"]
    assert " no " in lines["missing-dep"]
    for name in BUILTIN:
        assert lines[name].split()[2] == "yes"

    listed = json.loads(codecs("--json"))
    by_name = {entry["name"]: entry for entry in listed}
    for name, expected in EXPECTED_BROKEN.items():
        assert by_name[name] == expected.as_dict()
    assert all(by_name[name]["available"] for name in BUILTIN)


LATE_PLUGIN = textwrap.dedent(
    """
    from migcodec.codecs.plugins.raw import RawCodec

    class LateCodec(RawCodec):
        name = "late"
    """
)


def test_a_plugin_installed_while_the_process_runs_is_loaded_not_a_crash(plugin_site):
    """stevedore keeps the entry points it read for the process; listings have it read
    them again. A plugin installed after the first listing must be listed and load, and
    must not make plugin_statuses() raise (which would hide every plugin)."""
    before = {s.name for s in plugin_statuses()}  # fills stevedore's caches
    write_dist(
        plugin_site,
        "migcodec-late",
        {"late": "migcodec_late_test:LateCodec"},
        {"migcodec_late_test": LATE_PLUGIN},
    )
    assert "late" in available_codecs() and "late" not in before
    statuses = {s.name: s for s in plugin_statuses()}
    assert statuses["late"] == PluginStatus(
        "late", "raw", True, "software", "runs on the CPU", "migcodec_late_test:LateCodec"
    )
    assert get_codec("late").get_config() == {"name": "late"}


def test_a_lookup_finds_a_plugin_installed_after_stevedore_read_the_list(plugin_site):
    """No listing in between: the lookup that misses has stevedore read the list again."""
    assert get_codec("raw").get_config() == {"name": "raw"}  # stevedore holds a list now
    write_dist(
        plugin_site,
        "migcodec-late",
        {"late": "migcodec_late_test:LateCodec"},
        {"migcodec_late_test": LATE_PLUGIN},
    )
    assert get_codec("late").get_config() == {"name": "late"}


def test_a_plugin_removed_while_the_process_runs_is_reported_as_not_installed(plugin_site):
    """Listed (so in stevedore's list), then uninstalled before its first use: the lookup is
    told the codec is gone, not that a module failed to import."""
    info = write_dist(
        plugin_site,
        "migcodec-gone",
        {"gone": "migcodec_gone_test:LateCodec"},
        {"migcodec_gone_test": LATE_PLUGIN},
    )
    assert "gone" in available_codecs()
    shutil.rmtree(info)  # what pip uninstall removes: the metadata and the module
    (plugin_site / "migcodec_gone_test.py").unlink()
    with pytest.raises(CodecNotFound) as raised:
        get_codec("gone")
    assert str(raised.value) == (
        f"no codec named 'gone' is installed (installed: {', '.join(available_codecs())})"
        "; a third-party codec is installed as a package with a 'migcodec.codecs' entry point"
    )


def test_a_lookup_that_finds_its_codec_reads_no_package_metadata(monkeypatch):
    """Every stream's two ends resolve their codecs: once stevedore holds its list, a lookup
    that finds the codec neither has stevedore read the list again nor scans packages."""
    get_codec("lz4")

    def read(*args, **kwargs):
        raise AssertionError("a lookup that found its codec read the installed packages")

    monkeypatch.setattr(stevedore._cache, "Cache", read)
    monkeypatch.setattr(importlib.metadata, "entry_points", read)
    monkeypatch.setattr(importlib.metadata, "distributions", read)
    assert get_codec({"name": "zstd", "level": 3}).get_config() == {"name": "zstd", "level": 3}
    assert get_codec("lz4").get_config() == {"name": "lz4", "acceleration": 1}


CLASH = "migcodec_clash_a_test:LateCodec", "migcodec_clash_b_test:LateCodec"
CLASH_REASON = (
    "registered by 2 plugins ('migcodec_clash_a_test:LateCodec' from migcodec-clash-a and "
    "'migcodec_clash_b_test:LateCodec' from migcodec-clash-b); a stream names codecs by "
    "name, so uninstall all but one"
)


@pytest.fixture
def clashing_plugins(plugin_site: Path) -> Path:
    """Two distributions that register the same codec name (b installed first)."""
    for package, target in (("migcodec-clash-b", CLASH[1]), ("migcodec-clash-a", CLASH[0])):
        write_dist(plugin_site, package, {"clash": target}, {target.split(":")[0]: LATE_PLUGIN})
    return plugin_site


def test_a_name_two_plugins_register_is_refused_naming_both(clashing_plugins):
    assert available_codecs().count("clash") == 1
    with pytest.raises(CodecUnavailable) as info:
        get_codec("clash")
    assert str(info.value) == f"codec 'clash' is {CLASH_REASON}"
    statuses = {s.name: s for s in plugin_statuses()}
    assert statuses["clash"] == PluginStatus(
        "clash", "?", False, "unavailable", CLASH_REASON, ", ".join(CLASH)
    )
    # neither plugin was imported, and the others are unaffected
    assert not {target.split(":")[0] for target in CLASH} & set(sys.modules)
    assert all(statuses[name].available for name in BUILTIN)


def test_the_fixture_leaves_no_plugin_behind():
    """Runs after the tests above (file order): their plugins are gone again."""
    assert not (set(EXPECTED_BROKEN) | {"late", "gone", "clash"}) & set(available_codecs())
    assert {s.name for s in plugin_statuses()} == set(available_codecs())


def test_decoding_with_a_registry_codec_is_independent_of_the_instance():
    """Two instances from the same config are interchangeable across encode and decode."""
    memory = generate_pages("mixed", 32, 4)
    encoded = get_codec("zstd", level=-2).encode(Batch(memory, [(3, 9), (20, 5)]))
    dest = np.zeros_like(memory)
    get_codec({"name": "zstd", "level": -2}).decode(encoded, dest)
    np.testing.assert_array_equal(dest[3:12], memory[3:12])
    np.testing.assert_array_equal(dest[20:25], memory[20:25])


def test_a_configuration_where_a_name_belongs_is_named_as_such_not_as_a_missing_package():
    with pytest.raises(CodecNotFound) as err:
        get_codec("zstd:level=3")
    assert str(err.value) == (
        "'zstd:level=3' is a configuration of codec 'zstd'; this takes a codec's name alone "
        "('zstd'), with its default parameters"
    )
    with pytest.raises(CodecNotFound, match="no codec named 'nope:x=1' is installed"):
        get_codec("nope:x=1")
