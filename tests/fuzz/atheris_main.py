"""Run one fuzz target of ``targets.py`` under atheris (libFuzzer) for a long campaign.

    pip install atheris
    python -m tests.fuzz.atheris_main TARGET [libFuzzer options] [CORPUS_DIR ...]

e.g. ``python -m tests.fuzz.atheris_main codec_blob -max_total_time=3600 corpus/codec_blob``.
atheris is not a dependency of migcodec; the default test suite runs the same targets with
hypothesis instead (``test_fuzz.py``).
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    try:
        import atheris
    except ImportError:
        sys.exit("atheris is not installed: pip install atheris")
    with atheris.instrument_imports():  # coverage feedback from migcodec's own code
        from tests.fuzz.targets import TARGETS
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} TARGET [libFuzzer options]; TARGET is one of {sorted(TARGETS)}")
    atheris.Setup([argv[0], *argv[2:]], TARGETS[argv[1]])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
