"""A plugin whose own code raises ``KeyboardInterrupt``: the codec's failure, named with
what to do, not the user's Ctrl-C (``bench`` said "interrupted" with status 130, and a
destination ended as if its operator had stopped it). A real Ctrl-C or SIGTERM still ends
the command as one (``tests/codecs/test_misbehaving_plugins.py`` sends them to a command
whose codec never returns).

Plugins are registered with ``plugin_site`` exactly as pip would register them.
"""

from __future__ import annotations

import re
import signal
import textwrap
import threading
from pathlib import Path

import pytest

from migcodec.interrupts import from_signal, raise_interrupted, raise_terminated
from tests.plugin_dist import write_dist

INTERRUPTING = textwrap.dedent(
    """
    import zlib

    from migcodec.codecs import Codec
    from migcodec.codecs.plugins.raw import RawCodec

    class ProbeInterrupts(RawCodec):
        name = "probe-interrupts"

        @classmethod
        def probe(cls):
            raise KeyboardInterrupt("device reset")

    class StartInterrupts(RawCodec):
        name = "start-interrupts"

        def __init__(self):
            raise KeyboardInterrupt("device reset")

    class EncodeInterrupts(Codec):
        name = "encode-interrupts"

        def encode_pages(self, pages):
            raise KeyboardInterrupt("queue drained")

        def decode_pages(self, blob, n_pages, page_size):
            return zlib.decompress(bytes(blob))

    class DecodeInterrupts(Codec):
        name = "decode-interrupts"

        def encode_pages(self, pages):
            return zlib.compress(pages.tobytes(), 1)

        def decode_pages(self, blob, n_pages, page_size):
            raise KeyboardInterrupt("queue drained")
    """
)

UNINSTALL = (
    "upgrade the package that provides it, or uninstall it: pip uninstall migcodec-interrupting"
)


@pytest.fixture
def interrupting_plugins(plugin_site: Path) -> Path:
    """One distribution with a plugin per place its own code raises ``KeyboardInterrupt``."""
    write_dist(
        plugin_site,
        "migcodec-interrupting",
        {
            "probe-interrupts": "migcodec_interrupting_plugin:ProbeInterrupts",
            "start-interrupts": "migcodec_interrupting_plugin:StartInterrupts",
            "encode-interrupts": "migcodec_interrupting_plugin:EncodeInterrupts",
            "decode-interrupts": "migcodec_interrupting_plugin:DecodeInterrupts",
        },
        {"migcodec_interrupting_plugin": INTERRUPTING},
    )
    return plugin_site


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("encode-interrupts", "failed in the benchmark (KeyboardInterrupt: queue drained)"),
        (
            "decode-interrupts",
            "failed to decode the benchmark pages (KeyboardInterrupt: queue drained)",
        ),
        ("probe-interrupts", "cannot run here: probe failed: KeyboardInterrupt: device reset"),
        ("start-interrupts", "failed to start (KeyboardInterrupt: device reset)"),
    ],
)
def test_bench_names_a_codec_whose_own_code_raises_keyboard_interrupt(
    interrupting_plugins, capsys, name, what
):
    from migcodec.cli import main

    assert main(["bench", "--codecs", name, "--pages", "64"]) == 2
    out, err = capsys.readouterr()
    hint = "" if name == "probe-interrupts" else f"; {UNINSTALL}"
    assert (out, err) == ("", f"migcodec bench: codec {name!r} {what}{hint}\n")


def test_a_decode_that_raises_keyboard_interrupt_is_a_corrupt_payload(interrupting_plugins, capsys):
    """The destination's decode: a wire error at its frame, as any other exception a
    decoder raises on what a peer sent."""
    from migcodec.cli import main

    assert main(["migrate", "--codec", "decode-interrupts", "--memory", "1MiB", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("migcodec migrate: the migration failed: ") and err.count("\n") == 1
    assert re.search(
        r"frame \d+, byte offset \d+: decode-interrupts failed on this payload: "
        r"KeyboardInterrupt: queue drained",
        err,
    ), err


def test_the_handlers_raise_what_from_signal_knows_for_a_signal():
    """In the main thread under both handlers, the exception a handler raised (or one
    raised while handling it) is a signal's, one raised by code is not; outside the main
    thread none is; under other handlers every ``KeyboardInterrupt`` is taken for one."""
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, raise_interrupted),
        signal.SIGTERM: signal.signal(signal.SIGTERM, raise_terminated),
    }
    try:
        for handler, sig in (
            (raise_interrupted, signal.SIGINT),
            (raise_terminated, signal.SIGTERM),
        ):
            with pytest.raises(KeyboardInterrupt) as info:
                handler(sig, None)
            assert from_signal(info.value)
            try:
                try:
                    handler(sig, None)
                except KeyboardInterrupt:
                    raise KeyboardInterrupt("cleaning up") from None
            except KeyboardInterrupt as exc:
                assert from_signal(exc)  # its context is the handler's
        assert not from_signal(KeyboardInterrupt("a codec's own"))
        assert not from_signal(ValueError("not an interrupt"))
        seen = []
        thread = threading.Thread(target=lambda: seen.append(from_signal(info.value)))
        thread.start()
        thread.join()
        assert seen == [False]
        signal.signal(signal.SIGINT, signal.default_int_handler)
        assert from_signal(KeyboardInterrupt("a codec's own"))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
