"""im2col/col2im and pooling kernels against naive float64 loops (tests/oracles/conv_pool.py) and torch."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from oracles.conv_pool import (DTYPES, SETTINGS, adaptive_windows, avg_windows, conv_cases, garbage,
                                naive_avg, naive_avg_backward, naive_col2im, naive_conv2d, naive_im2col,
                                naive_max_pool, naive_max_pool_backward, out_size, path, pool_cases,
                                pool_input, tol)
from tinynorm.kernels.cpu import im2col as ic
from tinynorm.kernels.cpu import pooling as pl


# ---------------------------------------------------------------- im2col


@pytest.mark.parametrize("args", [(5, 3, 1, 0, 1), (8, 3, 1, 1, 1), (7, 3, 2, 1, 2), (4, 5, 1, 3, 1), (6, 2, 3, 0, 2)])
def test_conv_output_size(args):
    n, k, s, p, d = args
    assert ic.conv_output_size(n, k, s, p, d) == len(range(-p, n + p - d * (k - 1), s))


@SETTINGS
@given(conv_cases(), st.sampled_from(DTYPES), st.booleans(), st.integers(0, 2**32 - 1))
def test_im2col_conv_col2im(g, dtype, parallel, seed):
    rng = np.random.default_rng(seed)
    N, C, H, W = g["N"], g["Cg"] * g["groups"], g["H"], g["W"]
    geo = tuple(g[k] for k in ("kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw"))
    kh, kw = geo[:2]
    OH = ic.conv_output_size(H, kh, g["sh"], g["ph"], g["dh"])
    OW = ic.conv_output_size(W, kw, g["sw"], g["pw"], g["dw"])
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    cols = garbage((C * kh * kw, N * OH * OW), dtype, rng)
    with path(parallel):
        assert ic.im2col(x, *geo, cols) is cols
    np.testing.assert_array_equal(cols, naive_im2col(x, *geo).astype(dtype))

    Co, K = g["cog"] * g["groups"], g["Cg"] * kh * kw
    wt = rng.standard_normal((Co, g["Cg"], kh, kw)).astype(dtype)
    w2 = wt.reshape(g["groups"], g["cog"], K)
    y = np.concatenate([w2[i] @ cols[i * K:(i + 1) * K] for i in range(g["groups"])])
    y = y.reshape(Co, N, OH, OW).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(y, naive_conv2d(x, wt, *geo[2:], g["groups"]), **tol(dtype))

    dcols = rng.standard_normal(cols.shape).astype(dtype)
    dx = garbage(x.shape, dtype, rng)
    with path(parallel):
        assert ic.col2im(dcols, N, C, H, W, *geo, dx) is dx
    np.testing.assert_allclose(dx, naive_col2im(dcols, N, C, H, W, *geo), **tol(dtype))


@SETTINGS
@given(conv_cases(), st.booleans(), st.integers(0, 2**32 - 1))
def test_col2im_is_adjoint_of_im2col(g, parallel, seed):
    rng = np.random.default_rng(seed)
    N, C, H, W = g["N"], g["Cg"] * g["groups"], g["H"], g["W"]
    geo = tuple(g[k] for k in ("kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw"))
    OH = ic.conv_output_size(H, g["kh"], g["sh"], g["ph"], g["dh"])
    OW = ic.conv_output_size(W, g["kw"], g["sw"], g["pw"], g["dw"])
    x = rng.standard_normal((N, C, H, W))
    c = rng.standard_normal((C * g["kh"] * g["kw"], N * OH * OW))
    with path(parallel):
        cols = ic.im2col(x, *geo, np.empty_like(c))
        dx = ic.col2im(c, N, C, H, W, *geo, np.empty_like(x))
    np.testing.assert_allclose(np.vdot(cols, c), np.vdot(x, dx), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64, 1, 8, 8), (4, 32, 8, 8), (2, 3, 20, 17)])
@pytest.mark.parametrize("geo", [(3, 3, 1, 1, 1, 1, 1, 1), (3, 3, 2, 2, 1, 1, 1, 1), (2, 3, 1, 2, 0, 2, 2, 1)])
def test_im2col_training_shapes_both_paths(shape, geo, dtype):
    rng = np.random.default_rng(0)
    N, C, H, W = shape
    OH = ic.conv_output_size(H, geo[0], geo[2], geo[4], geo[6])
    OW = ic.conv_output_size(W, geo[1], geo[3], geo[5], geo[7])
    x = rng.standard_normal(shape).astype(dtype)
    c = rng.standard_normal((C * geo[0] * geo[1], N * OH * OW)).astype(dtype)
    want = naive_im2col(x, *geo).astype(dtype) if C == 1 else None
    results = []
    for parallel in (False, True):
        with path(parallel):
            cols = ic.im2col(x, *geo, garbage(c.shape, dtype, rng))
            dx = ic.col2im(c, N, C, H, W, *geo, garbage(shape, dtype, rng))
        results.append((cols, dx))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    if want is not None:
        np.testing.assert_array_equal(results[0][0], want)
    np.testing.assert_allclose(np.vdot(results[0][0].astype(np.float64), c),
                               np.vdot(x.astype(np.float64), results[0][1]), rtol=1e-4)


def naive_swap_leading(a, bias):
    I, J, S = a.shape
    out = np.empty((J, I, S), np.float64)
    for i in range(I):
        for j in range(J):
            for k in range(S):
                out[j, i, k] = float(a[i, j, k]) + (0.0 if bias is None else float(bias[i]))
    return out


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 40), st.sampled_from(DTYPES), st.booleans(),
       st.booleans(), st.integers(0, 2**32 - 1))
def test_swap_leading(I, J, S, dtype, with_bias, parallel, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((I, J, S)).astype(dtype)
    bias = rng.standard_normal(I).astype(dtype) if with_bias else None
    out = np.full((J, I, S), np.nan, dtype)
    with path(parallel):
        assert ic.swap_leading(a, bias, out) is out
    np.testing.assert_allclose(out, naive_swap_leading(a, bias), **tol(dtype))
    if not with_bias:
        np.testing.assert_array_equal(out, a.transpose(1, 0, 2))


def test_swap_leading_rejects_bad_arguments():
    a = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="out must be an array of shape"):
        ic.swap_leading(a, None, np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="bias must have 2 values"):
        ic.swap_leading(a, np.zeros(3, np.float32), np.zeros((3, 2, 4), np.float32))
    with pytest.raises(ValueError, match="C-contiguous 3-d"):
        ic.swap_leading(a.transpose(1, 0, 2), None, np.zeros((2, 3, 4), np.float32))


def test_threshold_picks_kernel(monkeypatch):
    calls = []

    def spy(name, f):
        def g(*a):
            calls.append(name)
            return f(*a)
        return g

    for mod, names in ((ic, ("_im2col_par", "_im2col_ser")),
                       (pl, ("_max_fwd_par", "_max_fwd_ser", "_max_dense_par", "_max_dense_ser"))):
        for name in names:
            monkeypatch.setattr(mod, name, spy(name, getattr(mod, name)))
    x = np.zeros((1, 1, 4, 4))
    for threshold in (0, 1 << 62):
        monkeypatch.setattr(ic, "PARALLEL_THRESHOLD", threshold)
        monkeypatch.setattr(pl, "PARALLEL_THRESHOLD", threshold)
        ic.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, np.empty((9, 16)))
        pl.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1, np.empty((1, 1, 2, 2)), np.empty((1, 1, 2, 2), np.int64))
        pl.max_pool2d_forward(x, 2, 2, 1, 1, 0, 0, 1, 1, np.empty((1, 1, 3, 3)), np.empty((1, 1, 3, 3), np.int64))
        pl.max_pool2d_forward(x, 3, 3, 2, 2, 1, 1, 1, 1, np.empty((1, 1, 2, 2)), np.empty((1, 1, 2, 2), np.int64))
    assert calls == ["_im2col_par", "_max_dense_par", "_max_dense_par", "_max_fwd_par",
                     "_im2col_ser", "_max_dense_ser", "_max_dense_ser", "_max_fwd_ser"]


def test_im2col_rejects_bad_outputs():
    x = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError):
        ic.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, np.empty((18, 15), np.float32))
    with pytest.raises(TypeError):
        ic.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, np.empty((18, 16), np.float64))
    with pytest.raises(ValueError):
        ic.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, np.empty((16, 18), np.float32).T)
    with pytest.raises(ValueError):
        ic.im2col(x, 5, 5, 1, 1, 0, 0, 1, 1, np.empty((50, 0), np.float32))
    with pytest.raises(TypeError):
        ic.im2col(x.astype(np.int32), 3, 3, 1, 1, 1, 1, 1, 1, np.empty((18, 16), np.int32))


# ---------------------------------------------------------------- pooling


@pytest.mark.parametrize("args, want", [
    ((5, 2, 2, 0, 1, False), 2), ((5, 2, 2, 0, 1, True), 3), ((6, 3, 2, 1, 1, False), 3),
    ((6, 3, 2, 1, 1, True), 4), ((5, 2, 2, 1, 1, False), 3), ((5, 2, 2, 1, 1, True), 3),
    ((4, 3, 3, 1, 1, True), 2), ((7, 3, 2, 0, 2, True), 2), ((1, 1, 2, 0, 1, True), 1),
    ((10, 4, 3, 2, 1, False), 4), ((10, 4, 3, 2, 1, True), 4), ((11, 4, 3, 2, 1, True), 5),
])
def test_pool_output_size(args, want):
    assert pl.pool_output_size(*args) == want


@SETTINGS
@given(pool_cases(), st.sampled_from(DTYPES), st.booleans(), st.booleans(), st.booleans(), st.integers(0, 2**32 - 1))
def test_max_pool(g, dtype, parallel, ties, nans, seed):
    rng = np.random.default_rng(seed)
    x = pool_input(g, dtype, rng, ties, nans)
    geo = tuple(g[k] for k in ("kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw"))
    shape = (g["N"], g["C"], g["OH"], g["OW"])
    y = garbage(shape, dtype, rng)
    arg = rng.integers(-9, 9, shape)
    with path(parallel):
        pl.max_pool2d_forward(x, *geo, y, arg)
    want_y, want_arg = naive_max_pool(x, *geo, g["OH"], g["OW"])
    np.testing.assert_array_equal(y, want_y.astype(dtype))
    np.testing.assert_array_equal(arg, want_arg)

    dy = rng.standard_normal(shape).astype(dtype)
    dx = garbage(x.shape, dtype, rng)
    with path(parallel):
        pl.max_pool2d_backward(dy, arg, dx)
    np.testing.assert_allclose(dx, naive_max_pool_backward(dy, want_arg, g["H"], g["W"]), **tol(dtype))


def test_max_pool_backward_finite_differences():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 7, 6))
    geo = (3, 2, 2, 1, 1, 1, 1, 2)
    OH, OW = out_size(7, 3, 2, 1, 1), out_size(6, 2, 1, 1, 2)
    y, arg = np.empty((2, 2, OH, OW)), np.empty((2, 2, OH, OW), np.int64)
    pl.max_pool2d_forward(x, *geo, y, arg)
    dy = rng.standard_normal(y.shape)
    dx = pl.max_pool2d_backward(dy, arg, np.empty_like(x))
    eps, fd = 1e-6, np.empty_like(x)
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = eps
        e = e.reshape(x.shape)
        fd.flat[k] = np.vdot(dy, naive_max_pool(x + e, *geo, OH, OW)[0]
                             - naive_max_pool(x - e, *geo, OH, OW)[0]) / (2 * eps)
    np.testing.assert_allclose(dx, fd, rtol=1e-6, atol=1e-6)


def test_max_pool_empty_window():
    x = np.arange(4.0).reshape(1, 1, 2, 2)
    y, arg = np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int64)
    pl.max_pool2d_forward(x, 2, 2, 1, 1, 1, 1, 3, 3, y, arg)
    assert y[0, 0, 0, 0] == -np.inf and arg[0, 0, 0, 0] == -1
    dx = pl.max_pool2d_backward(np.ones((1, 1, 1, 1)), arg, np.full_like(x, np.nan))
    np.testing.assert_array_equal(dx, 0)


@SETTINGS
@given(pool_cases(dilation=False), st.sampled_from(DTYPES), st.booleans(), st.booleans(), st.integers(0, 2**32 - 1))
def test_avg_pool(g, dtype, include_pad, parallel, seed):
    rng = np.random.default_rng(seed)
    x = pool_input(g, dtype, rng, False, False)
    geo = tuple(g[k] for k in ("kh", "kw", "sh", "sw", "ph", "pw"))
    shape = (g["N"], g["C"], g["OH"], g["OW"])
    hwin = avg_windows(g["OH"], g["H"], g["kh"], g["sh"], g["ph"], include_pad)
    wwin = avg_windows(g["OW"], g["W"], g["kw"], g["sw"], g["pw"], include_pad)
    y = garbage(shape, dtype, rng)
    with path(parallel):
        pl.avg_pool2d_forward(x, *geo, include_pad, y)
    np.testing.assert_allclose(y, naive_avg(x.astype(np.float64), hwin, wwin), **tol(dtype))

    dy = rng.standard_normal(shape).astype(dtype)
    dx = garbage(x.shape, dtype, rng)
    with path(parallel):
        pl.avg_pool2d_backward(dy, *geo, include_pad, dx)
    np.testing.assert_allclose(dx, naive_avg_backward(dy.astype(np.float64), hwin, wwin, g["H"], g["W"]),
                               **tol(dtype))


@SETTINGS
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 11), st.integers(1, 11), st.integers(1, 6),
       st.integers(1, 6), st.sampled_from(DTYPES), st.booleans(), st.integers(0, 2**32 - 1))
def test_adaptive_avg_pool(N, C, H, W, OH, OW, dtype, parallel, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    hwin, wwin = adaptive_windows(OH, H), adaptive_windows(OW, W)
    y = garbage((N, C, OH, OW), dtype, rng)
    with path(parallel):
        pl.adaptive_avg_pool2d_forward(x, y)
    np.testing.assert_allclose(y, naive_avg(x.astype(np.float64), hwin, wwin), **tol(dtype))

    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = garbage(x.shape, dtype, rng)
    with path(parallel):
        pl.adaptive_avg_pool2d_backward(dy, dx)
    np.testing.assert_allclose(dx, naive_avg_backward(dy.astype(np.float64), hwin, wwin, H, W), **tol(dtype))


def test_pool_rejects_bad_outputs():
    x = np.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError):
        pl.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1, np.empty((1, 3, 2, 2)), np.empty((1, 3, 2, 2), np.int64))
    with pytest.raises(TypeError):
        pl.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1, np.empty((1, 2, 2, 2)), np.empty((1, 2, 2, 2), np.int32))
    with pytest.raises(TypeError):
        pl.avg_pool2d_forward(x, 2, 2, 2, 2, 0, 0, True, np.empty((1, 2, 2, 2), np.float32))
    with pytest.raises(ValueError):
        pl.adaptive_avg_pool2d_forward(x, np.empty((1, 2, 4, 2))[:, :, ::2])


# ---------------------------------------------------------------- torch


@SETTINGS
@given(conv_cases(), st.booleans(), st.integers(0, 2**32 - 1))
def test_conv_matches_torch(g, parallel, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    N, C, H, W = g["N"], g["Cg"] * g["groups"], g["H"], g["W"]
    geo = tuple(g[k] for k in ("kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw"))
    kh, kw, sh, sw, ph, pw, dh, dw = geo
    OH, OW = ic.conv_output_size(H, kh, sh, ph, dh), ic.conv_output_size(W, kw, sw, pw, dw)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    Co, K = g["cog"] * g["groups"], g["Cg"] * kh * kw
    wt = rng.standard_normal((Co, g["Cg"], kh, kw)).astype(np.float32)
    with path(parallel):
        cols = ic.im2col(x, *geo, np.empty((C * kh * kw, N * OH * OW), np.float32))
    w2 = wt.reshape(g["groups"], g["cog"], K)
    y = np.concatenate([w2[i] @ cols[i * K:(i + 1) * K] for i in range(g["groups"])])
    y = y.reshape(Co, N, OH, OW).transpose(1, 0, 2, 3)
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(wt), None, (sh, sw), (ph, pw),
                                      (dh, dw), g["groups"])
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-5, atol=1e-5)


@SETTINGS
@given(pool_cases(), st.booleans(), st.booleans(), st.booleans(), st.integers(0, 2**32 - 1))
def test_pools_match_torch(g, include_pad, ties, parallel, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(seed)
    x = pool_input(g, np.float32, rng, ties, rng.random() < 0.2)
    kh, kw, sh, sw, ph, pw, dh, dw = (g[k] for k in ("kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw"))
    shape = (g["N"], g["C"], g["OH"], g["OW"])
    dy = rng.standard_normal(shape).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()

    want, want_arg = F.max_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), (dh, dw), g["ceil"], return_indices=True)
    assert tuple(want.shape) == shape
    y, arg = np.empty(shape, np.float32), np.empty(shape, np.int64)
    with path(parallel):
        pl.max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, dh, dw, y, arg)
    np.testing.assert_array_equal(y, want.detach().numpy())
    filled = arg >= 0
    np.testing.assert_array_equal(arg[filled], want_arg.numpy()[filled])
    if filled.all():
        want.backward(torch.from_numpy(dy))
        with path(parallel):
            dx = pl.max_pool2d_backward(dy, arg, np.empty_like(x))
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-5)

    shape = shape[:2] + (out_size(g["H"], kh, sh, ph, 1, g["ceil"]), out_size(g["W"], kw, sw, pw, 1, g["ceil"]))
    assume(shape[2] >= 1 and shape[3] >= 1)
    dy = rng.standard_normal(shape).astype(np.float32)
    x = np.nan_to_num(x)
    xt = torch.from_numpy(x).requires_grad_()
    want = F.avg_pool2d(xt, (kh, kw), (sh, sw), (ph, pw), g["ceil"], include_pad)
    want.backward(torch.from_numpy(dy))
    with path(parallel):
        y = pl.avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, include_pad, np.empty(shape, np.float32))
        dx = pl.avg_pool2d_backward(dy, kh, kw, sh, sw, ph, pw, include_pad, np.empty_like(x))
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-5)

    xt = torch.from_numpy(x).requires_grad_()
    want = F.adaptive_avg_pool2d(xt, shape[2:])
    want.backward(torch.from_numpy(dy))
    with path(parallel):
        y = pl.adaptive_avg_pool2d_forward(x, np.empty(shape, np.float32))
        dx = pl.adaptive_avg_pool2d_backward(dy, np.empty_like(x))
    np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k, s, hw", [((2, 2), (2, 2), (8, 8)), ((3, 2), (1, 2), (7, 6)), ((2, 2), (2, 2), (5, 7)),
                                      ((3, 3), (3, 3), (9, 9)), ((2, 2), (1, 1), (4, 5)), ((2, 2), (2, 2), (2, 2))])
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("ties_nans", [(False, False), (True, False), (True, True)])
def test_max_pool_dense_path_matches_naive(k, s, hw, parallel, ties_nans):
    """Unpadded, undilated windows take the dense kernel; ties, NaNs and both builds included."""
    rng = np.random.default_rng(7)
    ties, nans = ties_nans
    x = (rng.integers(-2, 3, (2, 3) + hw) if ties else rng.standard_normal((2, 3) + hw)).astype(np.float32)
    if nans:
        x[rng.random(x.shape) < 0.1] = np.nan
    oh, ow = ((hw[0] - k[0]) // s[0] + 1, (hw[1] - k[1]) // s[1] + 1)
    y = np.full((2, 3, oh, ow), 99.0, np.float32)
    arg = np.full(y.shape, -7, np.int64)
    with path(parallel):
        pl.max_pool2d_forward(x, *k, *s, 0, 0, 1, 1, y, arg)
    want_y, want_arg = naive_max_pool(x, *k, *s, 0, 0, 1, 1, oh, ow)
    np.testing.assert_array_equal(y, want_y.astype(np.float32))
    np.testing.assert_array_equal(arg, want_arg)
