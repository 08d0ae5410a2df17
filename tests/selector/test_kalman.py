"""auto's Kalman filters: one observation's update is the Kalman update of its observation
vector, and the C extension's update and numpy's give the same bits."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migcodec.selector.policies import kalman
from migcodec.selector.policies.kalman import RatioFilter, kalman_update

OBSERVATIONS = st.lists(
    st.tuples(st.integers(0, 3), st.floats(-2, 4), st.floats(0.001, 1.0)),
    min_size=1,
    max_size=6,
)


@contextlib.contextmanager
def _path(name: str):
    """kalman_update's path ``name`` for the duration (hypothesis runs many examples
    per test call, so not a function-scoped fixture)."""
    saved = kalman._native_observe
    if name == "numpy":
        kalman._native_observe = None
    else:
        assert kalman.FILTER_UPDATE == "C extension"
    try:
        yield
    finally:
        kalman._native_observe = saved


@pytest.mark.parametrize("path", ["C extension", "numpy"])
@settings(max_examples=200, deadline=None)
@given(observations=OBSERVATIONS)
def test_one_observation_is_the_kalman_update_of_its_observation_vector(path, observations):
    """observe() updates the mean and covariance in place, from columns and kept buffers
    (or in C): each step must equal the textbook update with the observation vector
    written out (the level and the arm's offset)."""
    f = RatioFilter(4)
    x, p = f.x.copy(), f.p.copy()
    for arm, y, noise in observations:
        h = np.zeros(x.size)
        h[0] = h[2 + arm] = 1.0
        gain = p @ h / (h @ p @ h + noise)
        x = x + gain * (y - h @ x)
        p = p - np.outer(gain, h @ p)
        with _path(path):
            f.observe(arm, y, noise)
        np.testing.assert_allclose(f.x, x, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(f.p, p, rtol=1e-9, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(observations=OBSERVATIONS)
def test_a_probe_sees_the_level_the_arms_offset_and_both_parts_of_the_bias(observations):
    """A probe's observation vector: the level, the shared bias, the arm's offset and the
    arm's own part of the bias, each once."""
    f = RatioFilter(4)
    x, p = f.x.copy(), f.p.copy()
    for arm, y, noise in observations:
        h = np.zeros(x.size)
        h[[0, 1, 2 + arm, 6 + arm]] = 1.0
        gain = p @ h / (h @ p @ h + noise)
        x = x + gain * (y - h @ x)
        p = p - np.outer(gain, h @ p)
        f.observe_probes(np.array([arm]), np.array([y]), noise)
        np.testing.assert_allclose(f.x, x, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(f.p, p, rtol=1e-9, atol=1e-12)


def test_an_arm_whose_probes_miss_its_windows_learns_that_alone():
    """Arm 0's windows compress 0.3 better (log) than its probes say, arm 1's as its
    probes say: after some windows of moving content, a fresh window's probes put each
    arm where its windows will be. One bias shared by all arms put both halfway."""
    f = RatioFilter(2)
    rng = np.random.default_rng(1)
    for _ in range(40):
        level = rng.uniform(0.0, 2.0)
        f.drift(1.0, 0.0)  # the content moves: the level is the probes' to tell
        f.observe_probes(np.array([0, 1]), np.array([level, level + 0.5]), 0.01)
        f.observe(0, level + 0.3, 0.01)
        f.drift(1.0, 0.0)
        f.observe_probes(np.array([0, 1]), np.array([level, level + 0.5]), 0.01)
        f.observe(1, level + 0.5, 0.01)
    f.drift(1.0, 0.0)
    f.observe_probes(np.array([0, 1]), np.array([1.0, 1.5]), 0.01)
    np.testing.assert_allclose(f.mean(), [1.3, 1.5], atol=0.05)


def _never_played_setting(families):
    """A fresh window's estimate of arm 1, which is never played, after windows where arm
    0 (zstd at one level) sends 0.3 (log) better than its probes say and arm 2 (another
    codec) 0.3 worse; every probe reads the window's level."""
    f = RatioFilter(3, families)
    rng = np.random.default_rng(1)
    for _ in range(40):
        level = rng.uniform(0.0, 2.0)
        for played, gap in ((0, 0.3), (2, -0.3)):
            f.drift(1.0, 0.0)  # the content moves: the level is the probes' to tell
            f.observe_probes(np.array([0, 1, 2]), np.full(3, level), 0.01)
            f.observe(played, level + gap, 0.01)
    f.drift(1.0, 0.0)
    f.observe_probes(np.array([0, 1, 2]), np.full(3, 1.0), 0.01)
    return f.mean()


def test_a_codec_s_setting_never_played_learns_from_the_setting_played():
    """Arm 1, the same codec as arm 0 at another setting, compares its probes with its
    windows as arm 0 does: its estimate follows arm 0's (1.3), not the bias all arms share,
    which arm 2's plays pull the other way. Without the families it kept the shared part
    alone (about 1.0)."""
    together = _never_played_setting(["zstd", "zstd", "lz4"])
    apart = _never_played_setting(None)
    assert together[0] == pytest.approx(1.3, abs=0.05)
    assert together[1] == pytest.approx(1.3, abs=0.1)
    assert abs(apart[1] - 1.0) < 0.1


@settings(max_examples=200, deadline=None)
@given(observations=OBSERVATIONS, drifts=st.lists(st.floats(0.0, 0.5), min_size=6, max_size=6))
def test_the_c_update_gives_numpys_bits(observations, drifts):
    """A policy's choices must not depend on whether the extension was built: the C update
    does numpy's operations in numpy's order, without fused multiply-adds."""
    assert kalman.FILTER_UPDATE == "C extension"
    native, numpy_path = RatioFilter(4), RatioFilter(4)
    for (arm, y, noise), drift in zip(observations, drifts, strict=False):
        for f in (native, numpy_path):
            f.drift(drift, drift / 4)
        native.observe(arm, y, noise)
        with _path("numpy"):
            numpy_path.observe(arm, y, noise)
        np.testing.assert_array_equal(native.x, numpy_path.x)
        np.testing.assert_array_equal(native.p, numpy_path.p)


@pytest.mark.parametrize(
    ("state", "j"),
    [
        (np.zeros((3, 4)), 0),  # j must pick an arm's offset, not the level
        (np.zeros((3, 4)), 3),  # past the last row
        (np.zeros((3, 3)), 1),  # not n rows of n + 1
        # read by its length alone: 3 rows of 4 float32 as 2 rows of 3 doubles, and
        # an int64 state's bits as doubles
        (np.zeros((3, 4), np.float32), 1),
        (np.zeros((2, 3), np.int64), 1),
        (np.zeros(12), 1),  # the cells of 3 rows of 4, flat
    ],
)
def test_the_c_update_refuses_a_state_it_cannot_read(state, j):
    with pytest.raises(ValueError, match=r"observe needs a C-contiguous float64 state"):
        kalman._native_observe(state, j, 0.5, 0.1)


@pytest.mark.parametrize(
    ("layout", "problem"),
    [("read-only", "read-only"), ("not contiguous", "observe needs a C-contiguous float64")],
)
def test_the_c_update_refuses_a_state_it_may_not_write_in_place(layout, problem):
    state = np.zeros((3, 4)) if layout == "read-only" else np.zeros((4, 3)).T
    state.flags.writeable = layout != "read-only"
    with pytest.raises(ValueError, match=problem):
        kalman._native_observe(state, 1, 0.5, 0.1)


@pytest.mark.parametrize("path", ["C extension", "numpy"])
@settings(max_examples=100, deadline=None)
@given(
    plays=st.lists(
        st.tuples(st.integers(1, 2), st.floats(-1, 1), st.floats(0.01, 2.0)),
        min_size=1,
        max_size=8,
    )
)
def test_the_delta_arms_state_takes_the_same_update(path, plays):
    """The delta arms' CPU factors (a shared part and each arm's own) are a state of the
    same layout: a play of arm j sees the shared part plus its own."""
    state = np.zeros((3, 4))
    state[:, :3] = np.diag([0.3, 0.5, 0.5])
    x, p = state[:, 3].copy(), state[:, :3].copy()
    for j, y, noise in plays:
        h = np.array([1.0, 0.0, 0.0])
        h[j] = 1.0
        gain = p @ h / (h @ p @ h + noise)
        x, p = x + gain * (y - h @ x), p - np.outer(gain, h @ p)
        with _path(path):
            kalman_update(state, j, y, noise)
        np.testing.assert_allclose(state[:, 3], x, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(state[:, :3], p, rtol=1e-9, atol=1e-12)


def test_a_filter_too_large_for_the_c_update_takes_numpy_s():
    """The C update holds at most 256 rows; a ratio filter of 128 compressing arms (258
    rows) was refused mid-stream, and takes the numpy update instead."""
    large, small = RatioFilter(128), RatioFilter(127)
    for f in (large, small):
        f.observe(0, 1.0, 0.1)
    np.testing.assert_allclose(large.mean()[:2], small.mean()[:2])
