"""Each optional C extension's module says which path runs, and a missing one is replaced
by the fall-back with a sentence saying why and what to do."""

from __future__ import annotations

from migcodec.extensions import optional_extension


def test_a_built_extension_is_returned_and_named():
    module, path = optional_extension("migcodec.selector._filters")
    assert path == "C extension"
    assert callable(module.observe)


def test_a_missing_extension_names_the_fall_back_and_the_remedy():
    module, path = optional_extension("migcodec.codecs._not_built", "Python")
    assert module is None
    assert path == (
        "Python (C extension not built: No module named 'migcodec.codecs._not_built'; "
        "reinstall with a C compiler)"
    )
