"""BatchNorm CPU kernels (tinynorm.kernels.cpu.batch_norm) against a naive oracle.

The oracle is written from docs/norms.md#batchnorm with explicit Python loops over channels
and elements in float64 (math.fsum), and never calls the kernels.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
import tinynorm.kernels.cpu.batch_norm as K
from tinynorm import functional as F

DTYPES = [np.float32, np.float64]
# (N, C, S): S == 1 (BatchNorm1d on (N, C)), short planes (row traversal), long planes,
# one sample (N == 1); see the thresholds in the kernel module
SHAPES = [(4, 3, 1), (37, 5, 1), (6, 3, 4), (3, 5, 7), (9, 2, 20), (8, 2, 50), (2, 2, 33), (3, 4, 40),
          (10, 2, 300), (1, 2, 8195)]


# ---- oracle ------------------------------------------------------------------

def _channel_values(x3, c):
    N, _, S = x3.shape
    return [float(x3[n, c, s]) for n in range(N) for s in range(S)]


def oracle_stats(x3):
    C = x3.shape[1]
    count, mean, m2 = np.zeros(C), np.zeros(C), np.zeros(C)
    for c in range(C):
        vals = _channel_values(x3, c)
        m = len(vals)
        mu = math.fsum(vals) / m
        count[c] = m
        mean[c] = mu
        m2[c] = math.fsum((v - mu) ** 2 for v in vals)
    return count, mean, m2


def oracle_forward_apply(x3, mean, scale, shift):
    N, C, S = x3.shape
    y = np.zeros(x3.shape)
    for c in range(C):
        for n in range(N):
            for s in range(S):
                y[n, c, s] = (float(x3[n, c, s]) - mean[c]) * scale[c] + shift[c]
    return y


def oracle_backward_reduce(dy3, x3, mean):
    N, C, S = x3.shape
    sum_dy, sum_dy_xmu = np.zeros(C), np.zeros(C)
    for c in range(C):
        g = _channel_values(dy3, c)
        v = _channel_values(x3, c)
        sum_dy[c] = math.fsum(g)
        sum_dy_xmu[c] = math.fsum(gi * (vi - mean[c]) for gi, vi in zip(g, v))
    return sum_dy, sum_dy_xmu


def oracle_backward_apply(dy3, x3, mean, mean_dy, k, g):
    N, C, S = x3.shape
    dx = np.zeros(x3.shape)
    for c in range(C):
        for n in range(N):
            for s in range(S):
                dx[n, c, s] = ((float(dy3[n, c, s]) - mean_dy[c]
                                - (float(x3[n, c, s]) - mean[c]) * k[c]) * g[c])
    return dx


# ---- helpers -----------------------------------------------------------------

def configure(monkeypatch, parallel, nchunks=None, small_pieces=False, layout=None):
    """Force the serial or parallel kernels; optionally more runs than threads,
    tiny plane pieces, row blocks and column tiles (so that every Chan merge
    runs on small inputs), and one traversal ("rows" or "planes") for all S."""
    monkeypatch.setattr(K, "PARALLEL_MIN_ELEMENTS", 0 if parallel else 10**18)
    if nchunks is not None:
        monkeypatch.setattr(K, "get_num_threads", lambda: nchunks)
    if small_pieces:
        monkeypatch.setattr(K, "SEGMENT", 8)
        monkeypatch.setattr(K, "ROW_BLOCK_BYTES", 1)
        monkeypatch.setattr(K, "MIN_ROW_BLOCK", 5)
        monkeypatch.setattr(K, "TILE_COLS", 3)
    if layout is not None:
        max_s = 10**9 if layout == "rows" else 1
        for name in ("APPLY_ROWS_MAX_S", "STATS_ROWS_MAX_S", "REDUCE_ROWS_MAX_S"):
            monkeypatch.setattr(K, name, max_s)


@pytest.fixture(params=["serial", "parallel", "chunked", "chunked-rows", "chunked-planes"])
def path(request, monkeypatch):
    if request.param == "serial":
        configure(monkeypatch, parallel=False)
    elif request.param == "parallel":
        configure(monkeypatch, parallel=True)
    else:
        layout = request.param.partition("-")[2] or None
        configure(monkeypatch, parallel=True, nchunks=5, small_pieces=True, layout=layout)
    return request.param


def vec(C):
    return np.empty(C, dtype=np.float64)


def run_stats(x3):
    C = x3.shape[1]
    count, mean, m2 = vec(C), vec(C), vec(C)
    K.bn_stats(x3, count, mean, m2)
    return count, mean, m2


def make(rng, shape, dtype, loc=0.0):
    return (loc + rng.standard_normal(shape)).astype(dtype)


def eps(dtype):
    return float(np.finfo(dtype).eps)


def check_stats(x3):
    count, mean, m2 = run_stats(x3)
    rc, rm, rq = oracle_stats(x3)
    scale = np.abs(x3.astype(np.float64)).max(axis=(0, 2))
    np.testing.assert_array_equal(count, rc)
    np.testing.assert_allclose(mean, rm, rtol=0, atol=1e-13 * (scale.max() + 1))
    np.testing.assert_allclose(m2, rq, rtol=1e-10, atol=1e-13 * (rc * scale ** 2).max())


def check_forward_apply(rng, x3):
    C = x3.shape[1]
    mean = rng.standard_normal(C)
    scale = rng.standard_normal(C)
    shift = rng.standard_normal(C)
    y3 = np.empty_like(x3)
    K.bn_forward_apply(x3, mean, scale, shift, y3)
    assert y3.dtype == x3.dtype
    ref = oracle_forward_apply(x3, mean, scale, shift)
    xf = x3.astype(np.float64)
    bound = 8 * eps(x3.dtype) * ((np.abs(xf) + np.abs(mean)[:, None]) * np.abs(scale)[:, None]
                                 + np.abs(shift)[:, None])
    assert np.all(np.abs(y3 - ref) <= bound)


def check_backward_reduce(rng, x3):
    C = x3.shape[1]
    dy3 = make(rng, x3.shape, x3.dtype)
    mean = rng.standard_normal(C)
    sum_dy, sum_dy_xmu = vec(C), vec(C)
    K.bn_backward_reduce(dy3, x3, mean, sum_dy, sum_dy_xmu)
    rd, rx = oracle_backward_reduce(dy3, x3, mean)
    d64, x64 = dy3.astype(np.float64), x3.astype(np.float64)
    mag_d = np.abs(d64).sum(axis=(0, 2))
    mag_x = np.abs(d64 * (x64 - mean[:, None])).sum(axis=(0, 2))
    assert np.all(np.abs(sum_dy - rd) <= 1e-13 * mag_d + 1e-300)
    assert np.all(np.abs(sum_dy_xmu - rx) <= 1e-13 * mag_x + 1e-300)


def check_backward_apply(rng, x3):
    C = x3.shape[1]
    dy3 = make(rng, x3.shape, x3.dtype)
    mean, mean_dy, k, g = (rng.standard_normal(C) for _ in range(4))
    dx3 = np.empty_like(x3)
    K.bn_backward_apply(dy3, x3, mean, mean_dy, k, g, dx3)
    assert dx3.dtype == x3.dtype
    ref = oracle_backward_apply(dy3, x3, mean, mean_dy, k, g)
    d64, x64 = dy3.astype(np.float64), x3.astype(np.float64)
    col = lambda v: np.abs(v)[:, None]
    bound = 12 * eps(x3.dtype) * ((np.abs(d64) + col(mean_dy)
                                   + (np.abs(x64) + col(mean)) * col(k)) * col(g))
    assert np.all(np.abs(dx3 - ref) <= bound)


# ---- tests -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_stats(path, shape, dtype):
    check_stats(make(np.random.default_rng(1), shape, dtype, loc=3.0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_apply(path, shape, dtype):
    check_forward_apply(np.random.default_rng(2), make(np.random.default_rng(3), shape, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_reduce(path, shape, dtype):
    check_backward_reduce(np.random.default_rng(4), make(np.random.default_rng(5), shape, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_apply(path, shape, dtype):
    check_backward_apply(np.random.default_rng(6), make(np.random.default_rng(7), shape, dtype))


@pytest.mark.parametrize("shape", [(512, 8, 1), (64, 4, 3), (32, 4, 49), (16, 4, 300)])
def test_stats_stable_far_from_zero(path, shape):
    """1e4 + N(0, 1) in float32 keeps its variance (no sum-of-squares cancellation)."""
    x3 = make(np.random.default_rng(8), shape, np.float32, loc=1e4)
    count, mean, m2 = run_stats(x3)
    rc, rm, rq = oracle_stats(x3)
    var, ref_var = m2 / count, rq / rc
    assert np.all(ref_var > 0.5)
    assert np.max(np.abs(var / ref_var - 1)) < 1e-3
    np.testing.assert_allclose(mean, rm, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(9, 3, 1), (3, 3, 5), (2, 3, 40)])
def test_nan_propagates(path, shape, dtype):
    rng = np.random.default_rng(9)
    N, C, S = shape
    x3 = make(rng, shape, dtype)
    x3[N - 1, 1, S - 1] = np.nan
    count, mean, m2 = run_stats(x3)
    assert np.isnan(mean[1]) and np.isnan(m2[1])
    assert np.all(np.isfinite(mean[[0, 2]])) and np.all(np.isfinite(m2[[0, 2]]))

    y3 = np.empty_like(x3)
    K.bn_forward_apply(x3, mean, np.ones(C), np.zeros(C), y3)
    assert np.all(np.isnan(y3[:, 1])) and np.all(np.isfinite(y3[:, [0, 2]]))

    x3 = make(rng, shape, dtype)
    dy3 = make(rng, shape, dtype)
    dy3[0, 2, 0] = np.nan
    mean = np.zeros(C)
    sum_dy, sum_dy_xmu = vec(C), vec(C)
    K.bn_backward_reduce(dy3, x3, mean, sum_dy, sum_dy_xmu)
    assert np.isnan(sum_dy[2]) and np.isnan(sum_dy_xmu[2])
    assert np.all(np.isfinite(sum_dy[:2])) and np.all(np.isfinite(sum_dy_xmu[:2]))

    dx3 = np.empty_like(x3)
    K.bn_backward_apply(dy3, x3, mean, np.zeros(C), np.zeros(C), np.ones(C), dx3)
    assert np.isnan(dx3[0, 2, 0])
    assert np.isfinite(dx3).sum() == dx3.size - 1


def test_constant_channel_has_zero_m2(path):
    x3 = np.full((5, 2, 6), 7.25, dtype=np.float32)
    count, mean, m2 = run_stats(x3)
    np.testing.assert_array_equal(mean, [7.25, 7.25])
    np.testing.assert_array_equal(m2, [0.0, 0.0])


@pytest.mark.parametrize("shape", [(0, 3, 4), (2, 3, 0), (0, 3, 1)])
def test_empty_input(shape):
    x3 = np.zeros(shape, dtype=np.float32)
    count, mean, m2 = run_stats(x3)
    assert np.all(count == 0) and np.all(mean == 0) and np.all(m2 == 0)
    C = shape[1]
    sum_dy, sum_dy_xmu = vec(C), vec(C)
    K.bn_backward_reduce(x3, x3, np.zeros(C), sum_dy, sum_dy_xmu)
    assert np.all(sum_dy == 0) and np.all(sum_dy_xmu == 0)
    y3 = np.empty_like(x3)
    K.bn_forward_apply(x3, np.zeros(C), np.ones(C), np.zeros(C), y3)
    K.bn_backward_apply(x3, x3, np.zeros(C), np.zeros(C), np.zeros(C), np.ones(C), y3)


def test_wrappers_reject_mismatches():
    x3 = np.zeros((2, 3, 4), dtype=np.float32)
    with pytest.raises(AssertionError):
        K.bn_stats(x3, vec(2), vec(3), vec(3))
    with pytest.raises(AssertionError):
        K.bn_stats(x3, vec(3), np.zeros(3, np.float32), vec(3))
    with pytest.raises(AssertionError):
        K.bn_forward_apply(x3, vec(3), vec(3), vec(3), np.zeros((2, 3, 4)))
    with pytest.raises(AssertionError):
        K.bn_backward_reduce(x3[:, :, ::2], x3[:, :, ::2], vec(3), vec(3), vec(3))
    with pytest.raises(AssertionError):
        K.bn_stats(x3.reshape(6, 4), vec(4), vec(4), vec(4))


def test_serial_and_parallel_twins_are_distinct():
    """Both builds of a body must not share one on-disk cache entry."""
    ser, par = K._stats_planes_serial, K._stats_planes_parallel
    assert ser.py_func.__qualname__ != par.py_func.__qualname__
    assert par.targetoptions.get("parallel") and not ser.targetoptions.get("parallel")


@settings(max_examples=25, deadline=None)
@given(N=st.integers(1, 12), C=st.integers(1, 5), S=st.integers(1, 40),
       dtype=st.sampled_from(DTYPES), parallel=st.booleans(),
       nchunks=st.integers(1, 4), small_pieces=st.booleans(),
       layout=st.sampled_from([None, "rows", "planes"]),
       loc=st.sampled_from([0.0, -50.0, 1e3]), seed=st.integers(0, 2**32 - 1))
def test_all_kernels_drawn_shapes(N, C, S, dtype, parallel, nchunks, small_pieces, layout, loc,
                                  seed):
    with pytest.MonkeyPatch.context() as mp:
        configure(mp, parallel, nchunks, small_pieces, layout)
        rng = np.random.default_rng(seed)
        x3 = make(rng, (N, C, S), dtype, loc=loc)
        check_stats(x3)
        check_forward_apply(rng, x3)
        check_backward_reduce(rng, x3)
        check_backward_apply(rng, x3)

# ---- float64 forward on odd shapes --------------------------------------------------
# The statistics kernels split work into heads and tails (rows four at a time, then the rest;
# segments of SEGMENT values; tiles of TILE_COLS columns; per-thread runs above
# PARALLEL_MIN_ELEMENTS). These shapes put a remainder in each, so a tail loop that skipped or
# double-counted values would show in the mean, in BN's and Batch Renorm's forward alike.

ODD_SHAPES = [(1, 3, 3), (2, 3, 1), (3, 5, 7), (5, 2, 1), (7, 3, 31), (9, 2, 33), (13, 1, 127),
              (17, 2, 129), (2, 1, K.SEGMENT + 3), (3, 2, 2 * K.SEGMENT - 1),
              (9, K.TILE_COLS + 1, 1), (11, 3, 47), (33, 1, 49), (6, 7, 1031), (5, 3, 3001)]


def naive(x):
    """Per-channel mean and biased variance by explicit loops in float64."""
    n, c, s = x.shape
    mean, var = np.zeros(c), np.zeros(c)
    for j in range(c):
        total = 0.0
        for i in range(n):
            for t in range(s):
                total += float(x[i, j, t])
        mean[j] = total / (n * s)
        sq = 0.0
        for i in range(n):
            for t in range(s):
                sq += (float(x[i, j, t]) - mean[j]) ** 2
        var[j] = sq / (n * s)
    return mean, var


@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_float64_forward_matches_the_loop_oracle(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape) * 3.0 + 7.0
    mean, var = naive(x)
    count, kmean, m2 = (np.empty(shape[1]) for _ in range(3))
    K.bn_stats(x, count, kmean, m2)
    np.testing.assert_array_equal(count, shape[0] * shape[2])
    np.testing.assert_allclose(kmean, mean, rtol=1e-13, atol=0)
    np.testing.assert_allclose(m2 / count, var, rtol=1e-11, atol=0)
    expected = (x - mean[None, :, None]) / np.sqrt(var[None, :, None] + 1e-5)
    y = F.batch_norm(tn.tensor(x), None, None, training=True).numpy()
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12)
    rm, rs = tn.zeros(shape[1], dtype=np.float64), tn.ones(shape[1], dtype=np.float64)
    yr = F.batch_renorm(tn.tensor(x), rm, rs, training=True, rmax=3.0, dmax=5.0).numpy()
    sigma = np.sqrt(var + 1e-5)
    r = np.clip(sigma, 1 / 3.0, 3.0)
    d = np.clip(mean, -5.0, 5.0)
    np.testing.assert_allclose(yr, expected * r[None, :, None] + d[None, :, None], rtol=0,
                               atol=1e-11)
