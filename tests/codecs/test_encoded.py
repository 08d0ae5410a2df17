"""Codec kinds and paths are enums that read as their strings everywhere a string went."""

from __future__ import annotations

import json

import numpy as np
import pytest

from migcodec.codecs import Batch, CodecKind, CodecPath, get_codec, plugin_statuses


@pytest.mark.parametrize("member", [*CodecKind, *CodecPath])
def test_a_member_is_its_string(member):
    value = member.value
    assert member == value and value == member and hash(member) == hash(value)
    assert str(member) == value and f"{member}" == value
    assert f"{member:>12}" == f"{value:>12}"  # the codecs table pads them
    assert json.dumps({"k": member, member: 1}) == json.dumps({"k": value, value: 1})
    assert type(member)(value) is member
    assert (np.array([member, "other"]) == value).tolist() == [True, False]


def test_built_in_codecs_and_their_measurements_carry_the_enums():
    memory = np.zeros((4, 4096), np.uint8)
    memory[1] = np.arange(4096) % 7
    expected = {"raw": CodecKind.RAW, "lz4": CodecKind.COMPRESS, "xbzrle": CodecKind.DELTA}
    for name, kind in expected.items():
        codec = get_codec(name)
        assert codec.kind is kind
        assert codec.encode(Batch(memory, [(0, 4)])).stats.path is CodecPath.SOFTWARE
    statuses = {s.name: s for s in plugin_statuses()}
    assert statuses["zstd"].kind is CodecKind.COMPRESS
    assert isinstance(statuses["zstd"].path, CodecPath)
