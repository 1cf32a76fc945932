"""Convolution one sample per GEMM (kernels/cpu/conv_planes.py): against the naive float64 loops of
tests/oracles/conv_pool.py, finite differences through Conv2d, and torch."""
import contextlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from oracles.conv_pool import DTYPES, garbage, naive_col2im, naive_conv2d, naive_im2col, out_size, tol
import tinynorm as tn
import tinynorm.functional as F
from tinynorm import blas
from tinynorm.kernels.cpu import conv_planes as cp
from tinynorm.testing import gradcheck

FAST = settings(max_examples=15, deadline=None)


@st.composite
def cases(draw, max_size=7):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), max_size))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), max_size))
    return dict(N=draw(st.integers(1, 4)), C=draw(st.integers(1, 3)), Co=draw(st.integers(1, 4)),
                H=h, W=w, geo=(kh, kw, sh, sw, ph, pw, dh, dw), bias=draw(st.booleans()),
                parts=draw(st.integers(1, 3)), seed=draw(st.integers(0, 2**31)))


@FAST
@given(cases(), st.sampled_from(DTYPES))
def test_forward_and_backward_match_loops(case, dtype):
    rng = np.random.default_rng(case["seed"])
    N, C, Co, H, W, geo, parts = (case[k] for k in ("N", "C", "Co", "H", "W", "geo", "parts"))
    kh, kw, sh, sw, ph, pw, dh, dw = geo
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    wt = rng.standard_normal((Co, C, kh, kw)).astype(dtype)
    b = rng.standard_normal(Co).astype(dtype) if case["bias"] else None
    K, P = C * kh * kw, OH * OW
    y = garbage((N, Co, OH, OW), dtype, rng)
    with blas.one_thread_gemm(dtype) as fn:
        assert cp.forward(fn, x, wt, b, geo, garbage((parts, K, P), dtype, rng), y, parts) is y
    want = naive_conv2d(x, wt, sh, sw, ph, pw, dh, dw, 1)
    if b is not None:
        want += b.astype(np.float64)[:, None, None]
    np.testing.assert_allclose(y, want, **tol(dtype))

    dy = rng.standard_normal(y.shape).astype(dtype)
    dy2 = dy.astype(np.float64).transpose(1, 0, 2, 3).reshape(Co, N * P)
    w2 = wt.astype(np.float64).reshape(Co, K)
    gw, dx = garbage((parts, Co, K), dtype, rng), garbage(x.shape, dtype, rng)
    with blas.one_thread_gemm(dtype) as fn:
        cp.backward(fn, x, wt, dy, geo, garbage((parts, K, P), dtype, rng),
                    garbage((parts, K, P), dtype, rng), gw, dx, True, True, parts)
    np.testing.assert_allclose(gw.sum(axis=0), dy2 @ naive_im2col(x, *geo).T, **tol(dtype))
    np.testing.assert_allclose(dx, naive_col2im(w2.T @ dy2, N, C, H, W, *geo), **tol(dtype))


def test_which_convolutions_go_one_sample_per_gemm():
    assert cp.pays(cp.MIN_PLANE, 1 << 30) and cp.pays(16, cp.MAX_SMALL_WEIGHT)
    assert not cp.pays(cp.MIN_PLANE - 1, cp.MAX_SMALL_WEIGHT + 1)


def test_bad_operands_raise():
    x = np.zeros((1, 2, 4, 4), np.float32)
    with blas.one_thread_gemm(np.float32) as fn:
        with pytest.raises(ValueError, match="does not fit"):
            cp.forward(fn, x, np.zeros((3, 1, 3, 3), np.float32), None, (3, 3, 1, 1, 1, 1, 1, 1),
                       np.zeros((1, 18, 16), np.float32), np.zeros((1, 3, 4, 4), np.float32), 1)
        with pytest.raises(ValueError, match="does not fit"):
            cp.forward(fn, x, np.zeros((3, 2, 3, 3), np.float32), None, (3, 3, 1, 1, 1, 1, 1, 1),
                       np.zeros((1, 18, 16), np.float32), np.zeros((1, 3, 5, 4), np.float32), 1)
        with pytest.raises(TypeError, match="float32 or float64"):
            cp.forward(fn, x.astype(np.int32), np.zeros((3, 2, 3, 3), np.int32), None,
                       (3, 3, 1, 1, 1, 1, 1, 1), np.zeros((1, 18, 16), np.int32),
                       np.zeros((1, 3, 4, 4), np.int32), 1)


@contextlib.contextmanager
def conv_path(per_sample):
    """Send every one-group CPU convolution one sample per GEMM, or none."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cp, "MIN_PLANE", 1 if per_sample else 1 << 62)
        mp.setattr(cp, "MAX_SMALL_WEIGHT", 1 << 62 if per_sample else -1)
        yield


@FAST
@given(cases(max_size=5), st.booleans())
def test_conv2d_gradcheck_both_paths(case, per_sample):
    rng = np.random.default_rng(case["seed"])
    kh, kw, sh, sw, ph, pw, dh, dw = case["geo"]
    x = rng.standard_normal((case["N"], case["C"], case["H"], case["W"]))
    w = rng.standard_normal((case["Co"], case["C"], kh, kw))
    kw_ = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))
    with conv_path(per_sample):
        if case["bias"]:
            gradcheck(lambda a, ww, bb: F.conv2d(a, ww, bb, **kw_),
                      [x, w, rng.standard_normal(case["Co"])])
        else:
            gradcheck(lambda a, ww: F.conv2d(a, ww, None, **kw_), [x, w])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, stride, padding, needs", [
    ((3, 4, 18, 17), 1, 1, (True, True)), ((2, 3, 33, 32), 2, 1, (True, False)),
    ((2, 5, 16, 16), 1, 0, (False, True))])
def test_conv2d_large_planes_match_torch(dtype, shape, stride, padding, needs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(shape).astype(dtype), rng.standard_normal((6, shape[1], 3, 3)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    tx, tw, tb = (tn.Tensor(a, requires_grad=r) for a, r in ((x, needs[0]), (w, needs[1]), (b, True)))
    y = F.conv2d(tx, tw, tb, stride=stride, padding=padding)
    assert cp.pays(y.shape[2] * y.shape[3], 0)
    dy = rng.standard_normal(y.shape).astype(dtype)
    (y * tn.Tensor(dy)).sum().backward()
    rx, rw, rb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ry = torch.nn.functional.conv2d(rx, rw, rb, stride=stride, padding=padding)
    ry.backward(torch.tensor(dy))
    t = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y.data, ry.detach().numpy(), **t)
    np.testing.assert_allclose(tb.grad.data, rb.grad.numpy(), **t)
    for mine, ref, need in ((tx, rx, needs[0]), (tw, rw, needs[1])):
        if need:
            np.testing.assert_allclose(mine.grad.data, ref.grad.numpy(), **t)
        else:
            assert mine.grad is None
