"""RMSNorm kernels for the CPU (Numba); the math is in :mod:`tinynorm.ops.rms_norm`.

x is viewed as x2 (R, D), the trailing ``normalized_shape`` axes flattened: one statistic r
per row, each thread a run of rows (the "rows" traversal of the package doc).

    rms_forward    y, r per row
    rms_backward   dx and (optionally) dw

Arrays are C-contiguous; x2/dy2/y2/dx2 are float32 or float64 (one dtype per
call) and w (D,) has that dtype; r (R,) and dw (D,) are float64. Sums of
squares and the backward dot product accumulate in float64 (a sum of squares
has no cancellation); the elementwise passes run in x's dtype. Outputs are
written into arrays the caller allocated.

Every kernel exists twice, compiled from one body: serial, and parallel with
prange over per-thread runs of rows. The host wrappers pick the parallel one
when x2 has at least PARALLEL_MIN_ELEMENTS elements. Only 'reassoc' and
'contract' are used as fast-math flags, on the float64 sums: a NaN in a row
reaches every output of that row.
"""
import numpy as np
from numba import get_num_threads, prange

from . import host
from .jit import REDUCE_MATH, njit, serial_and_parallel
from .loops import sum_sq

PARALLEL_MIN_ELEMENTS = 1 << 15


@njit(fastmath=REDUCE_MATH)
def _dot3(a, b, c):
    acc = 0.0
    for i in range(a.shape[0]):
        acc += np.float64(a[i]) * b[i] * c[i]
    return acc


@njit(fastmath=REDUCE_MATH)
def _dot2(a, b):
    acc = 0.0
    for i in range(a.shape[0]):
        acc += np.float64(a[i]) * b[i]
    return acc


@njit
def _scale(x, a, y):
    for i in range(x.shape[0]):
        y[i] = x[i] * a


@njit
def _scale_w(x, a, w, y):
    for i in range(x.shape[0]):
        y[i] = x[i] * a * w[i]


@njit
def _dx(dy, x, a, k, dx):
    for i in range(x.shape[0]):
        dx[i] = dy[i] * a - x[i] * k


@njit
def _dx_w(dy, x, w, a, k, dx):
    for i in range(x.shape[0]):
        dx[i] = dy[i] * w[i] * a - x[i] * k


@njit
def _add_dw(dy, x, r, acc):
    for i in range(x.shape[0]):
        acc[i] += np.float64(dy[i]) * x[i] * r


def _forward(x2, w, has_w, eps, nchunks, y2, rstd):
    R, D = x2.shape
    for t in prange(nchunks):
        for row in range(R * t // nchunks, R * (t + 1) // nchunks):
            r = 1.0 / np.sqrt(sum_sq(x2[row]) / D + eps)
            rstd[row] = r
            a = x2.dtype.type(r)
            if has_w:
                _scale_w(x2[row], a, w, y2[row])
            else:
                _scale(x2[row], a, y2[row])


def _backward(dy2, x2, w, has_w, rstd, need_dx, need_dw, nchunks, dx2, dw_part):
    R, D = x2.shape
    for t in prange(nchunks):
        acc = dw_part[t]
        if need_dw:
            acc[:] = 0.0
        for row in range(R * t // nchunks, R * (t + 1) // nchunks):
            r = rstd[row]
            if need_dx:
                s = _dot3(dy2[row], w, x2[row]) if has_w else _dot2(dy2[row], x2[row])
                a = x2.dtype.type(r)
                k = x2.dtype.type(s * r * r * r / D)
                if has_w:
                    _dx_w(dy2[row], x2[row], w, a, k, dx2[row])
                else:
                    _dx(dy2[row], x2[row], a, k, dx2[row])
            if need_dw:
                _add_dw(dy2[row], x2[row], r, acc)


_forward_serial, _forward_parallel = serial_and_parallel(_forward)
_backward_serial, _backward_parallel = serial_and_parallel(_backward)


# ---------------------------------------------------------------------------
# host wrappers


def _weight(weight, x2):
    if weight is None:
        return np.empty(0, x2.dtype), False
    host.check("weight", weight, (x2.shape[1],), x2.dtype)
    return weight, True


def _nchunks(x2):
    return host.parallel_runs(x2.size, x2.shape[0], PARALLEL_MIN_ELEMENTS, get_num_threads)


def rms_forward(x2, weight, eps, y2, rstd):
    """y2 = x2 * rstd[row] * weight with rstd = 1/sqrt(mean(x^2 over the row) + eps).

    ``weight`` is (D,) in x2's dtype or None (no scaling); rstd (R,) float64
    is written for the backward pass.
    """
    host.check_input("x2", x2, "RD", ("y2", y2))
    R, D = x2.shape
    host.check("rstd", rstd, (R,), np.float64)
    w, has_w = _weight(weight, x2)
    if R == 0:
        return
    if D == 0:
        rstd[:] = 1.0 / np.sqrt(eps)
        return
    nchunks, par = _nchunks(x2)
    f = _forward_parallel if par else _forward_serial
    f(x2, w, has_w, float(eps), nchunks, y2, rstd)


def rms_backward(dy2, x2, weight, rstd, dx2, dw):
    """dx2 = rstd*(w*dy - x*rstd^2/D * sum(w*dy*x)) and dw = sum_rows dy*x*rstd.

    Either output may be None to skip it; dw is (D,) float64.
    """
    host.check_input("x2", x2, "RD", ("dy2", dy2))
    R, D = x2.shape
    host.check("rstd", rstd, (R,), np.float64)
    w, has_w = _weight(weight, x2)
    need_dx, need_dw = dx2 is not None, dw is not None
    host.check("dx2", dx2, x2.shape, x2.dtype)
    host.check("dw", dw, (D,), np.float64)
    if R == 0 or D == 0:
        if need_dw:
            dw[:] = 0.0
        return
    nchunks, par = _nchunks(x2)
    part = np.empty((nchunks, D) if need_dw else (nchunks, 0))
    f = _backward_parallel if par else _backward_serial
    f(dy2, x2, w, has_w, rstd, need_dx, need_dw, nchunks,
      dx2 if need_dx else np.empty((0, 0), x2.dtype), part)
    if need_dw:
        part.sum(axis=0, out=dw)
