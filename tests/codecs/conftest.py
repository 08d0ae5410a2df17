"""Fake vendor libraries (QATzip, QPL) compiled from tests/codecs/fakes/ with the system C
compiler, once per test session. Tests that need them skip, saying why, where no C compiler
or zlib headers exist."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

FAKES = Path(__file__).with_name("fakes")


def _compile(tmp_path_factory: pytest.TempPathFactory, source: str, soname: str) -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (gcc/cc) to build the fake vendor library")
    if not Path("/usr/include/zlib.h").exists():
        pytest.skip("zlib headers missing (/usr/include/zlib.h): apt-get install zlib1g-dev")
    out = tmp_path_factory.mktemp("fakes") / soname
    cmd = [
        cc,
        "-shared",
        "-fPIC",
        "-O1",
        "-Wall",
        "-Werror",
        "-o",
        str(out),
        str(FAKES / source),
        "-lz",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode:
        pytest.fail(f"compiling {source} failed:\n{result.stderr}")
    return out


@pytest.fixture(scope="session")
def fake_qatzip_path(tmp_path_factory) -> Path:
    return _compile(tmp_path_factory, "fake_qatzip.c", "libfakeqatzip.so.3")


@pytest.fixture(scope="session")
def fake_qpl_path(tmp_path_factory) -> Path:
    return _compile(tmp_path_factory, "fake_qpl.c", "libfakeqpl.so.1")


@pytest.fixture
def fake_qatzip(fake_qatzip_path, monkeypatch):
    """The fake QATzip as the loaded library, one QAT device present, mode reset after."""
    monkeypatch.setenv("MIGCODEC_QATZIP_LIBRARY", str(fake_qatzip_path))
    monkeypatch.setenv("MIGCODEC_QAT_DEVICES", "1")
    lib = ctypes.CDLL(str(fake_qatzip_path))
    lib.fake_qz_set_mode(0)
    yield lib
    lib.fake_qz_set_mode(0)


@pytest.fixture
def fake_qpl(fake_qpl_path, monkeypatch):
    """The fake QPL as the loaded library, one IAA work queue present, state reset after."""
    monkeypatch.setenv("MIGCODEC_QPL_LIBRARY", str(fake_qpl_path))
    monkeypatch.setenv("MIGCODEC_IAA_DEVICES", "1")
    lib = ctypes.CDLL(str(fake_qpl_path))
    lib.fake_qpl_set_busy.argtypes = [ctypes.c_long]
    lib.fake_qpl_reset()
    yield lib
    lib.fake_qpl_reset()


@pytest.fixture
def no_accelerators(monkeypatch):
    """Neither vendor library nor device: both plugins run their emulated paths."""
    monkeypatch.setenv("MIGCODEC_QATZIP_LIBRARY", "")
    monkeypatch.setenv("MIGCODEC_QPL_LIBRARY", "")
    monkeypatch.setenv("MIGCODEC_QAT_DEVICES", "0")
    monkeypatch.setenv("MIGCODEC_IAA_DEVICES", "0")
