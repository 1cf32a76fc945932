"""im2col, pooling, ReLU and Adam CUDA kernels against the CPU kernels (simulator by default).

tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1 before numba is imported; the
simulator runs a Python thread per CUDA thread, so blocks and shapes are tiny.
"""
import math

import numpy as np
import pytest
from numba import cuda

import tinynorm.kernels.cpu.activation as AC
import tinynorm.kernels.cpu.adam as DC
import tinynorm.kernels.cpu.im2col as IC
import tinynorm.kernels.cpu.pooling as PC
import tinynorm.kernels.cuda.activation as AG
import tinynorm.kernels.cuda.adam as DG
import tinynorm.kernels.cuda.im2col as IG
import tinynorm.kernels.cuda.pooling as PG

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not cuda.is_available(), reason="no CUDA device or simulator")]

DTYPES = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-6)


def garbage(shape, dtype):
    """An output buffer full of NaN: every element must be overwritten."""
    return np.full(shape, np.nan, dtype)


# ---------------------------------------------------------------- im2col / col2im

# (N, C, H, W), (kh, kw), (sh, sw), (ph, pw), (dh, dw), threads
CONV = [
    # stride, padding and dilation on different axes
    ((1, 2, 5, 6), (3, 2), (2, 1), (1, 0), (1, 2), 32),
    # the kernel does not fit cleanly: the last input row and column are never read,
    # some columns read only padding
    ((1, 1, 5, 4), (2, 3), (3, 2), (2, 1), (2, 1), 64),
    # 3x3, stride 1, padding 1, two samples
    ((2, 1, 4, 4), (3, 3), (1, 1), (1, 1), (1, 1), 64),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV, ids=lambda c: f"{c[0]}k{c[1]}s{c[2]}p{c[3]}d{c[4]}")
def test_im2col_col2im_match_cpu(case, dtype):
    (N, C, H, W), (kh, kw), (sh, sw), (ph, pw), (dh, dw), threads = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    OH = IG.conv_output_size(H, kh, sh, ph, dh)
    OW = IG.conv_output_size(W, kw, sw, pw, dw)
    shape = (C * kh * kw, N * OH * OW)
    ref = IC.im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, np.empty(shape, dtype))
    got = garbage(shape, dtype)
    assert IG.im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, got, threads=threads) is got
    np.testing.assert_array_equal(got, ref)

    cols = rng.standard_normal(shape).astype(dtype)
    ref = IC.col2im(cols, N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, np.empty_like(x))
    got = garbage(x.shape, dtype)
    IG.col2im(cols, N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, got, threads=threads)
    np.testing.assert_allclose(got, ref, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_swap_leading_matches_cpu(dtype, with_bias):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4, 5)).astype(dtype)
    bias = rng.standard_normal(3).astype(dtype) if with_bias else None
    want = IC.swap_leading(a, bias, np.empty((4, 3, 5), dtype))
    got = IG.swap_leading(a, bias, np.empty((4, 3, 5), dtype))
    np.testing.assert_array_equal(got, want)


def test_im2col_checks_like_cpu():
    x = np.zeros((1, 1, 3, 3), np.float32)
    for mod in (IC, IG):
        with pytest.raises(ValueError, match="too small"):
            mod.im2col(x, 5, 5, 1, 1, 0, 0, 1, 1, np.empty((25, 1), np.float32))
        with pytest.raises(TypeError, match="dtype"):
            mod.im2col(x, 2, 2, 1, 1, 0, 0, 1, 1, np.empty((4, 4), np.float64))
        with pytest.raises(ValueError, match="cols must have shape"):
            mod.col2im(np.empty((4, 5), np.float32), 1, 1, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, x)


# ---------------------------------------------------------------- max pooling

# (N, C, H, W), (kh, kw), (sh, sw), (ph, pw), (dh, dw), threads
MAX = [
    # overlapping windows (stride < kernel) with padding: the general path
    ((1, 2, 5, 5), (3, 3), (2, 1), (1, 1), (1, 1), 32),
    # no padding or dilation, windows inside the plane: the CPU's dense path
    ((2, 1, 4, 5), (2, 3), (1, 1), (0, 0), (1, 1), 64),
    # dilation; the last column of windows is clipped
    ((1, 1, 6, 5), (2, 2), (1, 2), (1, 0), (2, 2), 32),
]


def max_pool_input(shape, dtype, rng):
    """Small integers (ties everywhere), NaNs (two in some windows) and -inf."""
    x = rng.integers(-2, 3, size=shape).astype(dtype)
    flat = x.reshape(-1)
    flat[[3, 5, 6, 17]] = np.nan
    flat[[0, 1, 10, 11, 12]] = -np.inf
    return x


def run_max(mod, x, geometry, out_hw, **kw):
    y = garbage(x.shape[:2] + out_hw, x.dtype)
    argmax = np.full(y.shape, -7, np.int64)
    mod.max_pool2d_forward(x, *geometry, y, argmax, **kw)
    return y, argmax


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", MAX, ids=lambda c: f"{c[0]}k{c[1]}s{c[2]}p{c[3]}d{c[4]}")
def test_max_pool_matches_cpu(case, dtype):
    shape, (kh, kw), (sh, sw), (ph, pw), (dh, dw), threads = case
    rng = np.random.default_rng(1)
    x = max_pool_input(shape, dtype, rng)
    out_hw = (PG.pool_output_size(shape[2], kh, sh, ph, dh),
              PG.pool_output_size(shape[3], kw, sw, pw, dw))
    geometry = (kh, kw, sh, sw, ph, pw, dh, dw)
    y_ref, a_ref = run_max(PC, x, geometry, out_hw)
    assert np.isnan(y_ref).any() and (a_ref >= 0).all()
    y, a = run_max(PG, x, geometry, out_hw, threads=threads)
    np.testing.assert_array_equal(a, a_ref)
    np.testing.assert_array_equal(y, y_ref)

    dy = rng.standard_normal(y.shape).astype(dtype)
    dx_ref = PC.max_pool2d_backward(dy, a_ref, np.empty_like(x))
    dx = garbage(x.shape, dtype)
    PG.max_pool2d_backward(dy, a, dx, threads=threads)
    np.testing.assert_allclose(dx, dx_ref, **tol(dtype))
    assert np.count_nonzero(dx) == np.count_nonzero(dx_ref)
    if dtype == np.float64:
        # both sum each position's gradients in ascending output order
        np.testing.assert_array_equal(dx, dx_ref)


def test_max_pool_ties_and_nan_order():
    # one window over a whole row: first maximum wins, then the last NaN wins
    x = np.array([[[[1.0, 3.0, 3.0, 2.0, 3.0]],
                   [[1.0, np.nan, 3.0, np.nan, 0.0]],
                   [[np.nan, 5.0, 1.0, 7.0, 2.0]],
                   [[-np.inf, -np.inf, -np.inf, -np.inf, -np.inf]]]])
    y, a = run_max(PG, x, (1, 5, 1, 1, 0, 0, 1, 1), (1, 1), threads=32)
    np.testing.assert_array_equal(a.reshape(-1), [1, 3, 0, 0])
    np.testing.assert_array_equal(y.reshape(-1), [3.0, np.nan, np.nan, -np.inf])
    _, a_ref = run_max(PC, x, (1, 5, 1, 1, 0, 0, 1, 1), (1, 1))
    np.testing.assert_array_equal(a, a_ref)


def test_max_pool_window_without_input():
    # taps at rows -1 and 2 of a 2-row input: y = -inf, argmax = -1, no gradient
    x = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    geometry = (2, 1, 1, 1, 1, 0, 3, 1)
    y_ref, a_ref = run_max(PC, x, geometry, (1, 3))
    y, a = run_max(PG, x, geometry, (1, 3), threads=32)
    assert (a_ref == -1).all() and np.isneginf(y_ref).all()
    np.testing.assert_array_equal(a, a_ref)
    np.testing.assert_array_equal(y, y_ref)
    dx = garbage(x.shape, np.float32)
    PG.max_pool2d_backward(np.ones_like(y), a, dx, threads=32)
    np.testing.assert_array_equal(dx, np.zeros_like(x))


# ---------------------------------------------------------------- average pooling

# (N, C, H, W), (kh, kw), (sh, sw), (ph, pw), ceil_mode, threads
AVG = [
    # ceil_mode adds a last row window clipped to H + ph and a last column window of one element
    ((1, 2, 6, 5), (3, 2), (2, 2), (1, 0), True, 32),
    # overlapping windows, padding on both axes, floor mode
    ((2, 1, 4, 4), (3, 3), (1, 2), (1, 1), False, 64),
]


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AVG, ids=lambda c: f"{c[0]}k{c[1]}s{c[2]}p{c[3]}ceil{c[4]}")
def test_avg_pool_matches_cpu(case, dtype, count_include_pad):
    shape, (kh, kw), (sh, sw), (ph, pw), ceil_mode, threads = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    out_shape = shape[:2] + (PC.pool_output_size(shape[2], kh, sh, ph, 1, ceil_mode),
                             PC.pool_output_size(shape[3], kw, sw, pw, 1, ceil_mode))
    params = (kh, kw, sh, sw, ph, pw, count_include_pad)
    y_ref = PC.avg_pool2d_forward(x, *params, np.empty(out_shape, dtype))
    y = garbage(out_shape, dtype)
    PG.avg_pool2d_forward(x, *params, y, threads=threads)
    np.testing.assert_allclose(y, y_ref, **tol(dtype))

    dy = rng.standard_normal(out_shape).astype(dtype)
    dx_ref = PC.avg_pool2d_backward(dy, *params, np.empty_like(x))
    dx = garbage(x.shape, dtype)
    PG.avg_pool2d_backward(dy, *params, dx, threads=threads)
    np.testing.assert_allclose(dx, dx_ref, **tol(dtype))


# (N, C, H, W), (OH, OW), threads: non-divisible sizes, shrinking and growing
ADAPTIVE = [((1, 2, 5, 7), (3, 4), 32), ((2, 1, 3, 4), (5, 3), 64)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ADAPTIVE, ids=lambda c: f"{c[0]}to{c[1]}")
def test_adaptive_avg_pool_matches_cpu(case, dtype):
    shape, out_hw, threads = case
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    out_shape = shape[:2] + out_hw
    y_ref = PC.adaptive_avg_pool2d_forward(x, np.empty(out_shape, dtype))
    y = garbage(out_shape, dtype)
    PG.adaptive_avg_pool2d_forward(x, y, threads=threads)
    np.testing.assert_allclose(y, y_ref, **tol(dtype))

    dy = rng.standard_normal(out_shape).astype(dtype)
    dx_ref = PC.adaptive_avg_pool2d_backward(dy, np.empty_like(x))
    dx = garbage(x.shape, dtype)
    PG.adaptive_avg_pool2d_backward(dy, dx, threads=threads)
    np.testing.assert_allclose(dx, dx_ref, **tol(dtype))


# ---------------------------------------------------------------- ReLU and Adam


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_matches_cpu(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(70).astype(dtype)
    x[:6] = [np.nan, -0.0, 0.0, np.inf, -np.inf, np.nan]
    dy = rng.standard_normal(70).astype(dtype)
    dy[[3, 8]] = np.nan
    x, dy = x.reshape(2, 5, 7), dy.reshape(2, 5, 7)
    y_ref = AC.relu_forward(x, np.empty_like(x))
    y = garbage(x.shape, dtype)
    assert AG.relu_forward(x, y, threads=32) is y
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(y_ref))
    assert not np.signbit(y).any()

    dx_ref = AC.relu_backward(dy, y_ref, np.empty_like(x))
    dx = garbage(x.shape, dtype)
    AG.relu_backward(dy, y, dx, threads=64)
    np.testing.assert_array_equal(dx, dx_ref)
    assert dx.reshape(-1)[0] == 0 and np.isnan(dx.reshape(-1)[3])


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_matches_cpu_over_three_steps(dtype):
    rng = np.random.default_rng(5)
    p = rng.standard_normal(70).astype(dtype).reshape(7, 10)
    state = {name: [p.copy(), np.zeros_like(p), np.zeros_like(p)] for name in ("cpu", "cuda")}
    lr, (b1, b2), eps = 1e-2, (0.9, 0.999), 1e-8
    for t in range(1, 4):
        g = rng.standard_normal(p.shape).astype(dtype)
        step_size, bias2_sqrt = lr / (1 - b1 ** t), math.sqrt(1 - b2 ** t)
        DC.adam_update(*state["cpu"][:1], g, *state["cpu"][1:], b1, b2, step_size, bias2_sqrt, eps)
        DG.adam_update(*state["cuda"][:1], g, *state["cuda"][1:], b1, b2, step_size, bias2_sqrt,
                       eps, threads=32)
    for name, got, ref in zip("pmv", state["cuda"], state["cpu"]):
        assert got.dtype == dtype, name
        np.testing.assert_allclose(got, ref, err_msg=name, **tol(dtype))
    assert not np.array_equal(state["cuda"][0], p)


# ---------------------------------------------------------------- device arrays


def test_device_arrays_in_place():
    rng = np.random.default_rng(6)
    x = max_pool_input((1, 2, 4, 5), np.float32, rng)
    x[np.isinf(x)] = 1.0

    cols_ref = IC.im2col(x, 2, 2, 1, 2, 1, 0, 1, 1, np.empty((8, 10), np.float32))
    d_x, d_cols = cuda.to_device(x), cuda.device_array((8, 10), np.float32)
    assert IG.im2col(d_x, 2, 2, 1, 2, 1, 0, 1, 1, d_cols, threads=32) is d_cols
    np.testing.assert_array_equal(d_cols.copy_to_host(), cols_ref)
    d_dx = cuda.device_array(x.shape, np.float32)
    IG.col2im(d_cols, 1, 2, 4, 5, 2, 2, 1, 2, 1, 0, 1, 1, d_dx, threads=32)
    dx_ref = IC.col2im(cols_ref, 1, 2, 4, 5, 2, 2, 1, 2, 1, 0, 1, 1, np.empty_like(x))
    np.testing.assert_allclose(d_dx.copy_to_host(), dx_ref, rtol=1e-6, atol=1e-6)

    geometry = (3, 3, 1, 1, 1, 1, 1, 1)
    y_ref, a_ref = run_max(PC, x, geometry, (4, 5))
    d_y, d_a = cuda.device_array(y_ref.shape, np.float32), cuda.device_array(y_ref.shape, np.int64)
    PG.max_pool2d_forward(d_x, *geometry, d_y, d_a, threads=64)
    np.testing.assert_array_equal(d_a.copy_to_host(), a_ref)
    np.testing.assert_array_equal(d_y.copy_to_host(), y_ref)
    dy = rng.standard_normal(y_ref.shape).astype(np.float32)
    PG.max_pool2d_backward(cuda.to_device(dy), d_a, d_dx, threads=64)
    np.testing.assert_allclose(d_dx.copy_to_host(),
                               PC.max_pool2d_backward(dy, a_ref, np.empty_like(x)),
                               rtol=1e-6, atol=1e-6)

    d_r = cuda.device_array(x.shape, np.float32)
    AG.relu_forward(d_x, d_r, threads=32)
    np.testing.assert_array_equal(d_r.copy_to_host(), AC.relu_forward(x, np.empty_like(x)))

    p, g = rng.standard_normal(20), rng.standard_normal(20)
    ref = [p.copy(), np.full(20, 0.1), np.full(20, 0.2)]
    dev = [cuda.to_device(a) for a in ref]
    DC.adam_update(ref[0], g, ref[1], ref[2], 0.9, 0.99, 0.1, 0.5, 1e-8)
    DG.adam_update(dev[0], cuda.to_device(g), dev[1], dev[2], 0.9, 0.99, 0.1, 0.5, 1e-8,
                   threads=32)
    for d, r in zip(dev, ref):
        np.testing.assert_allclose(d.copy_to_host(), r, rtol=1e-12, atol=1e-12)
