"""2-D convolution one sample at a time, where a sample's product is wide enough or its weight
small enough (:func:`pays`) to run as a GEMM of its own.

Each of ``parts`` threads takes a run of samples; per sample it unfolds the
patches into its own ``cols`` buffer (:mod:`.im2col`'s layout with N = 1, small
enough to stay in cache) and hands it straight to one single-threaded BLAS
call. Sample ``n``'s product ``W @ cols_n`` is ``y[n]`` in NCHW as it stands,
and ``dy[n]`` is the GEMM operand as it stands, so neither direction moves the
batch between layouts, and nothing of size ``C*kh*kw x N*OH*OW`` is stored:
the backward unfolds ``x[n]`` again. ``fn`` is a CBLAS ``?gemm`` as in
:mod:`.gemm`; groups are not handled here (one group only).
"""
import numpy as np
from numba import prange

from . import host
from .gemm import NO_TRANS, ROW_MAJOR, TRANS
from .im2col import _col2im_ser, _geometry, _im2col_ser
from .jit import njit

MIN_PLANE = 256
"""Output planes (OH*OW) from which a sample's GEMM is wide enough to run alone."""

MAX_SMALL_WEIGHT = 1 << 15
"""Weights of at most this many values stay in cache across samples, so that smaller planes
pay too (a large weight would be packed again for every narrow product)."""


def pays(plane, weight_size):
    """Whether a one-group convolution with ``plane`` output pixels and a weight of
    ``weight_size`` values goes one sample per GEMM."""
    return plane >= MIN_PLANE or weight_size <= MAX_SMALL_WEIGHT


@njit(parallel=True)
def _forward(fn, x, w, bias, add, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, cols, y, parts,
             one, zero):
    N = x.shape[0]
    cout, K = w.shape
    P = OH * OW
    step = cout * P * y.itemsize
    yf = y.reshape(-1)
    for t in prange(parts):
        buf = cols[t]
        for n in range(N * t // parts, N * (t + 1) // parts):
            _im2col_ser(x[n:n + 1], kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, buf)
            fn(ROW_MAJOR, NO_TRANS, NO_TRANS, cout, P, K, one, w.ctypes.data, K,
               buf.ctypes.data, P, zero, y.ctypes.data + n * step, P)
            if add:
                for o in range(cout):
                    b = bias[o]
                    row = (n * cout + o) * P
                    for s in range(P):
                        yf[row + s] += b


@njit(parallel=True)
def _backward(fn, x, w, dy, kh, kw, sh, sw, ph, pw, dh, dw, cols, dcols, gw, dx, want_x,
              want_w, parts, one, zero):
    N = dy.shape[0]
    cout, K = w.shape
    OH, OW = dy.shape[2], dy.shape[3]
    P = OH * OW
    step = cout * P * dy.itemsize
    for t in prange(parts):
        buf = cols[t]
        dbuf = dcols[t]
        gwt = gw[t]
        n0 = N * t // parts
        n1 = N * (t + 1) // parts
        if want_w:
            for i in range(cout):
                for k in range(K):
                    gwt[i, k] = 0
        for n in range(n0, n1):
            g = dy.ctypes.data + n * step
            if want_w:
                _im2col_ser(x[n:n + 1], kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, buf)
                fn(ROW_MAJOR, NO_TRANS, TRANS, cout, K, P, one, g, P, buf.ctypes.data, P,
                   one, gwt.ctypes.data, K)
            if want_x:
                fn(ROW_MAJOR, TRANS, NO_TRANS, K, P, cout, one, w.ctypes.data, K, g, P, zero,
                   dbuf.ctypes.data, P)
                _col2im_ser(dbuf, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW, dx[n:n + 1])


def _check(x, w, geometry):
    x = np.ascontiguousarray(x)
    host.check_float(x, "expected")
    w = np.ascontiguousarray(w)
    if w.dtype != x.dtype or w.ndim != 4 or w.shape[1] != x.shape[1]:
        raise ValueError(f"conv_planes: weight {w.shape} {w.dtype} does not fit input {x.shape} "
                         f"{x.dtype} (one group)")
    kh, kw, sh, sw, ph, pw, dh, dw = map(int, geometry)
    OH, OW = _geometry(x.shape[2], x.shape[3], kh, kw, sh, sw, ph, pw, dh, dw)
    return x, w.reshape(w.shape[0], -1), (kh, kw, sh, sw, ph, pw, dh, dw), OH, OW


def forward(fn, x, weight, bias, geometry, cols, y, parts):
    """``y = conv(x, weight) (+ bias)`` into ``y`` (N, Cout, OH, OW); ``geometry`` is
    (kh, kw, sh, sw, ph, pw, dh, dw); ``cols`` is scratch of shape (parts, C*kh*kw, OH*OW)."""
    x, w, g, OH, OW = _check(x, weight, geometry)
    N, cout = x.shape[0], w.shape[0]
    host.check_output("y", y, x.dtype)
    host.check_output("cols", cols, x.dtype)
    if y.shape != (N, cout, OH, OW) or cols.shape != (parts, w.shape[1], OH * OW):
        raise ValueError(f"conv_planes: y {y.shape} or cols {cols.shape} does not fit")
    add = bias is not None
    bias = np.ascontiguousarray(bias) if add else np.zeros(1, x.dtype)
    dt = x.dtype.type
    _forward(fn, x, w, bias, add, *g, OH, OW, cols, y, parts, dt(1), dt(0))
    return y


def backward(fn, x, weight, dy, geometry, cols, dcols, gw, dx, want_x, want_w, parts):
    """``dx`` (N, C, H, W) = col2im(W^T dy) and ``gw[t]`` (parts, Cout, C*kh*kw) = thread
    ``t``'s share of ``dy cols^T`` (the weight gradient is ``gw.sum(0)``); either may be skipped."""
    x, w, g, OH, OW = _check(x, weight, geometry)
    dy = np.ascontiguousarray(dy, dtype=x.dtype)
    if dy.shape != (x.shape[0], w.shape[0], OH, OW):
        raise ValueError(f"conv_planes: dy {dy.shape} does not fit the output "
                         f"{(x.shape[0], w.shape[0], OH, OW)}")
    for name, a in (("cols", cols), ("dcols", dcols), ("gw", gw), ("dx", dx)):
        host.check_output(name, a, x.dtype)
    dt = x.dtype.type
    _backward(fn, x, w, dy, *g, cols, dcols, gw, dx, bool(want_x), bool(want_w), parts,
              dt(1), dt(0))
    return dx, gw
