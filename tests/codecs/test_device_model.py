"""The device model: labelled, sourced, and what emulated plugins report as device time."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from migcodec.cli import main
from migcodec.codecs import Batch, CodecEngines, get_codec
from migcodec.codecs.device_model import DEVICE_MODELS, GBIT, LABEL, device_model


def test_published_figures():
    qat, iaa, dsa = (device_model(d) for d in ("qat", "iaa", "dsa"))
    assert qat.throughput_Bps == 24 * GBIT == 3e9  # QAT 8950 adapter: 24 Gbit/s
    assert qat.host_cpu_per_page_s == pytest.approx(1.6 / 2_940_235)  # QEMU qatzip doc
    assert iaa.throughput_Bps == pytest.approx(17_667e6 / 8)  # QEMU qpl commit, 1 device
    assert iaa.engines == 8 and dsa.engines == 4
    for model in DEVICE_MODELS.values():
        assert model.label == LABEL == "modelled"
        assert "(modelled)" in model.describe()
        assert len(model.sources) >= 2


def test_request_time_grows_with_size_and_overlaps_iaa_page_jobs():
    qat, iaa = device_model("qat"), device_model("iaa")
    one, two = qat.request_time(4096, 1), qat.request_time(8192, 2)
    assert qat.request_latency_s < one < two
    assert qat.request_time(64 * 4096, 64) == pytest.approx(20e-6 + 64 * 4096 / 3e9)
    # 64 page jobs spread over 8 engines: 8 waves of latency, the whole device's rate
    assert iaa.request_time(64 * 4096, 64) == pytest.approx(
        8 * 2e-6 + 64 * 4096 / iaa.throughput_Bps
    )
    assert qat.host_cpu_s(64 * 4096, 64) == pytest.approx(64 * 1.6 / 2_940_235)
    assert qat.request_time(8192) == two  # pages default to whole pages of the size


def test_unknown_device_names_the_known_ones():
    with pytest.raises(
        KeyError, match=re.escape("no device model named 'gpu'; known: dsa, iaa, qat")
    ):
        device_model("gpu")


@pytest.mark.parametrize("name", ["qat", "iaa"])
def test_emulated_results_carry_modelled_device_time(no_accelerators, name):
    memory = np.ones((8, 4096), np.uint8)
    memory[0] = 0  # a zero page is not sent to the device
    encoded = get_codec(name).encode(Batch(memory, [(0, 8)]))
    assert encoded.stats.path == "emulated"
    assert encoded.stats.device_s == device_model(name).request_time(7 * 4096, 7)
    zero_only = get_codec(name).encode(Batch(np.zeros((2, 4096), np.uint8), [(0, 2)]))
    assert (zero_only.stats.path, zero_only.stats.device_s) == ("emulated", None)


def test_codecs_command_reports_path_and_reason(fake_qatzip, no_accelerators, monkeypatch, capsys):
    monkeypatch.setenv("MIGCODEC_QATZIP_LIBRARY", fake_qatzip._name)
    monkeypatch.setenv("MIGCODEC_QAT_DEVICES", "2")
    assert main(["codecs", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert (rows["qat"]["path"], rows["qat"]["available"]) == ("hardware", True)
    assert rows["qat"]["reason"] == (
        f"QATzip {fake_qatzip._name} with 2 QAT device(s) (MIGCODEC_QAT_DEVICES=2)"
    )
    assert rows["iaa"]["path"] == "emulated"
    assert rows["iaa"]["reason"].endswith("device time modelled")


def test_engines_run_one_session_per_engine(fake_qatzip):
    memory = np.tile(np.arange(4096, dtype=np.uint32).astype(np.uint8), (64, 1))
    paths = []
    with CodecEngines(get_codec("qat"), engines=2, depth=2) as engines:
        for start in (0, 32):  # the pool holds 4 requests: submit 4, collect 4
            requests = [engines.submit(Batch(memory, [(start + i * 8, 8)])) for i in range(4)]
            for request in requests:
                with request:
                    paths.append(request.result(timeout=30).stats.path)
    assert paths == ["hardware"] * 8
