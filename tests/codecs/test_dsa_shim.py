"""The DML shim path of dsa-delta, against a fake shim compiled here (no DSA needed).

The fake writes DSA's record format itself (it is not DML's code), and fails on request, so
the test sees the ctypes binding, the packing of device records, and the software fall-back.
"""

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from migcodec.codecs import Batch, DestinationMirror, get_codec
from migcodec.codecs.delta import DELTA, UNCHANGED
from migcodec.codecs.plugins import dsa_delta

FAKE_SHIM = r"""
#include <stdint.h>
#include <string.h>
int fail_next = 0;
int migcodec_dsa_create_delta(const uint8_t *old, const uint8_t *new_, uint32_t n_pages,
                              uint32_t page_size, uint32_t max_record_size,
                              uint8_t *records, uint32_t *record_sizes, uint8_t *results) {
    if (fail_next) { fail_next = 0; return 7; }  /* e.g. a work-queue error */
    for (uint32_t p = 0; p < n_pages; p++) {
        const uint8_t *a = old + (size_t)p * page_size, *b = new_ + (size_t)p * page_size;
        uint8_t *rec = records + (size_t)p * max_record_size;
        uint32_t size = 0; results[p] = 0;
        for (uint32_t w = 0; w < page_size / 8; w++) {
            if (memcmp(a + 8 * w, b + 8 * w, 8) == 0) continue;
            if (size + 10 > max_record_size) { results[p] = 2; break; }
            uint16_t off = (uint16_t)w;
            memcpy(rec + size, &off, 2); memcpy(rec + size + 2, b + 8 * w, 8);
            size += 10; results[p] = 1;
        }
        record_sizes[p] = size;
    }
    return 0;
}
"""


@pytest.fixture
def fake_device(tmp_path, monkeypatch):
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler to build the fake DML shim")
    source = tmp_path / "shim.c"
    source.write_text(FAKE_SHIM)
    lib = tmp_path / "libfakeshim.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-o", str(lib), str(source)], check=True)
    (tmp_path / "wq0.0").touch()
    monkeypatch.setenv(dsa_delta.SHIM_ENV, str(lib))
    monkeypatch.setattr(dsa_delta, "WQ_GLOB", str(tmp_path / "wq*"))
    return lib


def test_shim_and_work_queue_select_the_hardware_path(fake_device):
    probe = dsa_delta.DsaDeltaCodec.probe()
    assert probe.path == "hardware" and str(fake_device) in probe.reason
    rng = np.random.default_rng(12)
    memory = rng.integers(0, 256, (8, 4096), dtype=np.uint8)
    device, software = get_codec("dsa-delta"), get_codec("dsa-delta")
    software._shim = None
    held, held_too = DestinationMirror(4096), DestinationMirror(4096)
    dest = np.zeros_like(memory)
    device.decode(device.encode(Batch(memory, [(0, 8)]), destination=held), dest)
    software.encode(Batch(memory, [(0, 8)]), destination=held_too)
    memory[1:6, ::512] += 1  # 8 words in five pages
    memory[7] = rng.integers(0, 256, 4096, dtype=np.uint8)  # overflow on the device: raw
    ours = device.encode(Batch(memory, [(0, 8)]), destination=held)
    theirs = software.encode(Batch(memory, [(0, 8)]), destination=held_too)
    assert ours.stats.path == "hardware" and theirs.stats.path == "software"
    assert ours.payload == theirs.payload
    np.testing.assert_array_equal(ours.modes, theirs.modes)
    assert (ours.modes[1:6] == DELTA).all() and ours.modes[0] == UNCHANGED
    device.decode(ours, dest)
    np.testing.assert_array_equal(dest, memory)


def test_a_failing_device_falls_back_to_software_and_counts_it(fake_device):
    codec, held = get_codec("dsa-delta"), DestinationMirror(4096)
    memory = np.ones((2, 4096), np.uint8)
    first = codec.encode(Batch(memory, [(0, 2)]), destination=held)
    assert first.stats.path == "software"  # nothing held: the fall-back codec ran
    memory[0, 16] = 2
    ctypes.c_int.in_dll(codec._shim, "fail_next").value = 1
    encoded = codec.encode(Batch(memory, [(0, 2)]), destination=held)
    assert codec.hardware_fallbacks == 1
    assert encoded.modes[0] == DELTA
    assert encoded.stats.path == "software"  # the device failed: numpy made the records
    memory[0, 24] = 3
    assert codec.encode(Batch(memory, [(0, 2)]), destination=held).stats.path == "hardware"
