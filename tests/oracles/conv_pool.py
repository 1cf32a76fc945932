"""im2col/col2im and pooling: naive float64 loop oracles, hypothesis draws, tolerances, and a switch between the
kernels' serial and parallel paths."""
import contextlib

import numpy as np
import pytest
from hypothesis import assume, settings, strategies as st

from tinynorm.kernels.cpu import im2col as ic
from tinynorm.kernels.cpu import pooling as pl

SETTINGS = settings(max_examples=25, deadline=None)
DTYPES = [np.float32, np.float64]


@contextlib.contextmanager
def path(parallel):
    """Force the prange (parallel=True) or the serial kernels."""
    with pytest.MonkeyPatch.context() as mp:
        threshold = 0 if parallel else 1 << 62
        mp.setattr(ic, "PARALLEL_THRESHOLD", threshold)
        mp.setattr(pl, "PARALLEL_THRESHOLD", threshold)
        yield


def out_size(n, k, s, p, d=1, ceil=False):
    span = n + 2 * p - d * (k - 1) - 1
    o = (span + (s - 1 if ceil else 0)) // s + 1
    if ceil and (o - 1) * s >= n + p:
        o -= 1
    return o


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def garbage(shape, dtype, rng):
    a = rng.standard_normal(shape).astype(dtype) * 1e3
    a.flat[:: 3] = np.nan
    return a


# ---------------------------------------------------------------- oracles


def naive_taps(N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw):
    """Every (row, column) of the im2col matrix that reads a pixel inside the input, with that
    pixel's (n, c, h, w), by explicit loops."""
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    for c, i, j, n, oh, ow in np.ndindex(C, kh, kw, N, OH, OW):
        h, w = oh * sh - ph + i * dh, ow * sw - pw + j * dw
        if 0 <= h < H and 0 <= w < W:
            yield c * kh * kw + i * kw + j, n * OH * OW + oh * OW + ow, (n, c, h, w)


def naive_im2col(x, kh, kw, sh, sw, ph, pw, dh, dw):
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    cols = np.zeros((C * kh * kw, N * OH * OW))
    for row, col, pixel in naive_taps(N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw):
        cols[row, col] = x[pixel]
    return cols


def naive_col2im(cols, N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw):
    dx = np.zeros((N, C, H, W))
    for row, col, pixel in naive_taps(N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw):
        dx[pixel] += cols[row, col]
    return dx


def naive_conv2d(x, wt, sh, sw, ph, pw, dh, dw, groups):
    N, C, H, W = x.shape
    Co, Cg, kh, kw = wt.shape
    OH, OW = out_size(H, kh, sh, ph, dh), out_size(W, kw, sw, pw, dw)
    per_group = Co // groups
    y = np.zeros((N, Co, OH, OW))
    for n in range(N):
        for co in range(Co):
            g = co // per_group
            for oh in range(OH):
                for ow in range(OW):
                    acc = 0.0
                    for ci in range(Cg):
                        for i in range(kh):
                            for j in range(kw):
                                h, w = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                                if 0 <= h < H and 0 <= w < W:
                                    acc += float(x[n, g * Cg + ci, h, w]) * float(wt[co, ci, i, j])
                    y[n, co, oh, ow] = acc
    return y


def naive_max_pool(x, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW):
    N, C, H, W = x.shape
    y = np.full((N, C, OH, OW), -np.inf)
    arg = np.full((N, C, OH, OW), -1, np.int64)
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    for i in range(kh):
                        for j in range(kw):
                            h, w = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                            if not (0 <= h < H and 0 <= w < W):
                                continue
                            v = float(x[n, c, h, w])
                            if arg[n, c, oh, ow] < 0 or v > y[n, c, oh, ow] or np.isnan(v):
                                y[n, c, oh, ow] = v
                                arg[n, c, oh, ow] = h * W + w
    return y, arg


def naive_max_pool_backward(dy, arg, H, W):
    N, C = dy.shape[:2]
    dx = np.zeros((N, C, H * W))
    for n in range(N):
        for c in range(C):
            for a, g in zip(arg[n, c].ravel(), dy[n, c].ravel()):
                if a >= 0:
                    dx[n, c, a] += g
    return dx.reshape(N, C, H, W)


def avg_windows(OH, H, kh, sh, ph, include_pad):
    """PyTorch's avg_pool2d window and divisor factor along one axis."""
    out = []
    for oh in range(OH):
        start = oh * sh - ph
        end = min(start + kh, H + ph)
        padded = end - start
        start, end = max(start, 0), min(end, H)
        out.append((start, end, padded if include_pad else end - start))
    return out


def adaptive_windows(OH, H):
    return [(o * H // OH, -(-(o + 1) * H // OH), -(-(o + 1) * H // OH) - o * H // OH) for o in range(OH)]


def naive_avg(x, hwin, wwin):
    N, C = x.shape[:2]
    y = np.zeros((N, C, len(hwin), len(wwin)))
    for oh, (hs, he, fh) in enumerate(hwin):
        for ow, (ws, we, fw) in enumerate(wwin):
            for h in range(hs, he):
                for w in range(ws, we):
                    y[:, :, oh, ow] += x[:, :, h, w]
            y[:, :, oh, ow] /= fh * fw
    return y


def naive_avg_backward(dy, hwin, wwin, H, W):
    N, C = dy.shape[:2]
    dx = np.zeros((N, C, H, W))
    for oh, (hs, he, fh) in enumerate(hwin):
        for ow, (ws, we, fw) in enumerate(wwin):
            for h in range(hs, he):
                for w in range(ws, we):
                    dx[:, :, h, w] += dy[:, :, oh, ow] / (fh * fw)
    return dx


# ---------------------------------------------------------------- strategies


@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    g = dict(
        N=draw(st.integers(1, 3)), Cg=draw(st.integers(1, 3)), cog=draw(st.integers(1, 3)),
        H=draw(st.integers(1, 9)), W=draw(st.integers(1, 9)),
        kh=draw(st.integers(1, 4)), kw=draw(st.integers(1, 4)),
        sh=draw(st.integers(1, 3)), sw=draw(st.integers(1, 3)),
        ph=draw(st.integers(0, 3)), pw=draw(st.integers(0, 3)),
        dh=draw(st.integers(1, 3)), dw=draw(st.integers(1, 3)), groups=groups,
    )
    assume(out_size(g["H"], g["kh"], g["sh"], g["ph"], g["dh"]) >= 1)
    assume(out_size(g["W"], g["kw"], g["sw"], g["pw"], g["dw"]) >= 1)
    return g


@st.composite
def pool_cases(draw, dilation=True):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    g = dict(
        N=draw(st.integers(1, 2)), C=draw(st.integers(1, 3)),
        H=draw(st.integers(1, 10)), W=draw(st.integers(1, 10)), kh=kh, kw=kw,
        sh=draw(st.integers(1, 3)), sw=draw(st.integers(1, 3)),
        ph=draw(st.integers(0, kh // 2)), pw=draw(st.integers(0, kw // 2)),
        dh=draw(st.integers(1, 3)) if dilation else 1,
        dw=draw(st.integers(1, 3)) if dilation else 1,
        ceil=draw(st.booleans()),
    )
    g["OH"] = out_size(g["H"], kh, g["sh"], g["ph"], g["dh"], g["ceil"])
    g["OW"] = out_size(g["W"], kw, g["sw"], g["pw"], g["dw"], g["ceil"])
    assume(g["OH"] >= 1 and g["OW"] >= 1)
    return g


def pool_input(g, dtype, rng, ties, nans):
    shape = (g["N"], g["C"], g["H"], g["W"])
    x = (rng.integers(-2, 3, shape) if ties else rng.standard_normal(shape)).astype(dtype)
    if nans:
        x[rng.random(shape) < 0.1] = np.nan
    return x
