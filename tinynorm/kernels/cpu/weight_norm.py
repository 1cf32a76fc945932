"""Weight normalization kernels for the CPU (Numba).

Weight Normalization (Salimans & Kingma, 2016, "Weight Normalization: A Simple
Reparameterization to Accelerate Training of Deep Neural Networks") writes a
weight as w = g * v / ||v||, the norm taken over every axis except one. With v
viewed as v3 of shape (A, D, B) (A = size of the axes before `dim`, D = size of
`dim`, B = size of the axes after it; dim=None is (1, 1, size)) the norm of
slice d runs over its A*B values:

    ||v||_d  = sqrt(sum_{a,b} v[a,d,b]^2)
    w        = v * g_d / ||v||_d
    grad_g_d = sum_{a,b} grad_w * v / ||v||_d
    grad_v   = g_d/||v||_d * (grad_w - grad_g_d * v / ||v||_d)

Four functions, mirrored in kernels/cuda/weight_norm.py:

    wn_sum_sq           out[d] = sum v^2                  (float64)
    wn_dot              out[d] = sum a * b                (float64)
    wn_scale            w  = v * scale[d]
    wn_backward_apply   gv = gw * a[d] - v * b[d]

so that scale = g/||v||, a = g/||v|| and b = g * grad_g / ||v||^2.

Arrays are C-contiguous; v3/gw3/w3/gv3 are float32 or float64 (one dtype per
call), per-slice vectors are float64 of shape (D,). Outputs are written into
arrays the caller allocated.

Sums of squares and dot products are accumulated in float64 (a sum of
squares has no cancellation to guard against, so one pass suffices). Two
traversals, both over contiguous per-thread runs of the flat array:

* planes: the run is walked (a, d) plane by plane, B values each, with one
  coefficient or accumulator per plane. Used when B >= PLANES_MIN_B
  (dim=0 of a Linear or Conv2d weight, dim=None).
* columns: the flat array is a sequence of rows of L = D*B columns; the run
  keeps one accumulator (or coefficient) per column, vectorized along the
  row, and the columns are folded into slices at the end. Used for short
  planes (e.g. dim = last axis, B == 1).

Every kernel exists twice, compiled from one body: serial, and parallel with
prange over per-thread runs; the host wrappers pick the parallel one at
PARALLEL_MIN_ELEMENTS elements or more.

The only fast-math flags are 'reassoc' and 'contract' on the float64
reduction loops; a NaN in v or grad_w reaches every output of its slice.
"""
import numpy as np
from numba import get_num_threads, prange

from .jit import njit, serial_and_parallel

PARALLEL_MIN_ELEMENTS = 1 << 15
PLANES_MIN_B = 32

_REDUCE_MATH = {"reassoc", "contract"}


# ---------------------------------------------------------------------------
# contiguous 1-D runs


@njit(fastmath=_REDUCE_MATH)
def _dot(a, b):
    acc = 0.0
    for i in range(a.shape[0]):
        acc += np.float64(a[i]) * np.float64(b[i])
    return acc


@njit(fastmath=_REDUCE_MATH)
def _dot_into_cols(a, b, acc):
    for i in range(a.shape[0]):
        acc[i] += np.float64(a[i]) * np.float64(b[i])


@njit
def _scale(v, s, w):
    for i in range(v.shape[0]):
        w[i] = v[i] * s


@njit
def _scale_cols(v, s, w):
    for i in range(v.shape[0]):
        w[i] = v[i] * s[i]


@njit
def _axpby(gw, v, a, b, gv):
    for i in range(v.shape[0]):
        gv[i] = gw[i] * a - v[i] * b


@njit
def _axpby_cols(gw, v, a, b, gv):
    for i in range(v.shape[0]):
        gv[i] = gw[i] * a[i] - v[i] * b[i]


# ---------------------------------------------------------------------------
# reductions


def _dot_planes(a1, b1, D, B, nchunks, out):
    E = a1.shape[0]
    part = np.zeros((nchunks, D))
    for t in prange(nchunks):
        e1 = E * (t + 1) // nchunks
        pos = E * t // nchunks
        p = pos // B
        d = p % D
        pend = (p + 1) * B
        while pos < e1:
            end = min(e1, pend)
            part[t, d] += _dot(a1[pos:end], b1[pos:end])
            pos = end
            pend += B
            d += 1
            if d == D:
                d = 0
    for d in range(D):
        acc = 0.0
        for t in range(nchunks):
            acc += part[t, d]
        out[d] = acc


def _dot_columns(a1, b1, D, B, nchunks, out):
    E = a1.shape[0]
    L = D * B
    part = np.zeros((nchunks, L))
    for t in prange(nchunks):
        e1 = E * (t + 1) // nchunks
        pos = E * t // nchunks
        j = pos % L
        while pos < e1:
            end = min(e1, pos + (L - j))
            _dot_into_cols(a1[pos:end], b1[pos:end], part[t, j:j + (end - pos)])
            pos = end
            j = 0
    for d in range(D):
        acc = 0.0
        for t in range(nchunks):
            for j in range(d * B, (d + 1) * B):
                acc += part[t, j]
        out[d] = acc


_dot_planes_serial, _dot_planes_parallel = serial_and_parallel(_dot_planes)
_dot_columns_serial, _dot_columns_parallel = serial_and_parallel(_dot_columns)


# ---------------------------------------------------------------------------
# elementwise passes (in v's dtype; coefficients already cast)


def _scale_planes(v1, D, B, nchunks, s, w1):
    E = v1.shape[0]
    for t in prange(nchunks):
        e1 = E * (t + 1) // nchunks
        pos = E * t // nchunks
        p = pos // B
        d = p % D
        pend = (p + 1) * B
        while pos < e1:
            end = min(e1, pend)
            _scale(v1[pos:end], s[d], w1[pos:end])
            pos = end
            pend += B
            d += 1
            if d == D:
                d = 0


def _scale_columns(v1, L, nchunks, s, w1):
    E = v1.shape[0]
    for t in prange(nchunks):
        e1 = E * (t + 1) // nchunks
        pos = E * t // nchunks
        j = pos % L
        while pos < e1:
            end = min(e1, pos + (L - j))
            _scale_cols(v1[pos:end], s[j:j + (end - pos)], w1[pos:end])
            pos = end
            j = 0


def _backward_apply_planes(gw1, v1, D, B, nchunks, a, b, gv1):
    E = v1.shape[0]
    for t in prange(nchunks):
        e1 = E * (t + 1) // nchunks
        pos = E * t // nchunks
        p = pos // B
        d = p % D
        pend = (p + 1) * B
        while pos < e1:
            end = min(e1, pend)
            _axpby(gw1[pos:end], v1[pos:end], a[d], b[d], gv1[pos:end])
            pos = end
            pend += B
            d += 1
            if d == D:
                d = 0


def _backward_apply_columns(gw1, v1, L, nchunks, a, b, gv1):
    E = v1.shape[0]
    for t in prange(nchunks):
        e1 = E * (t + 1) // nchunks
        pos = E * t // nchunks
        j = pos % L
        while pos < e1:
            end = min(e1, pos + (L - j))
            n = end - pos
            _axpby_cols(gw1[pos:end], v1[pos:end], a[j:j + n], b[j:j + n], gv1[pos:end])
            pos = end
            j = 0


_scale_planes_serial, _scale_planes_parallel = serial_and_parallel(_scale_planes)
_scale_columns_serial, _scale_columns_parallel = serial_and_parallel(_scale_columns)
_backward_apply_planes_serial, _backward_apply_planes_parallel = \
    serial_and_parallel(_backward_apply_planes)
_backward_apply_columns_serial, _backward_apply_columns_parallel = \
    serial_and_parallel(_backward_apply_columns)


# ---------------------------------------------------------------------------
# host wrappers


def _check(name, a, shape, dtype):
    assert a.shape == shape, f"{name}: shape {a.shape}, expected {shape}"
    assert a.dtype == dtype, f"{name}: dtype {a.dtype}, expected {dtype}"
    assert a.flags.c_contiguous, f"{name}: not C-contiguous"


def _check_big(v3, *others):
    assert v3.ndim == 3, f"v3 must be 3-D (A, D, B), got shape {v3.shape}"
    assert v3.dtype in (np.float32, np.float64), f"unsupported dtype {v3.dtype}"
    assert v3.flags.c_contiguous, "v3: not C-contiguous"
    for name, a in others:
        _check(name, a, v3.shape, v3.dtype)


def _check_vectors(D, *vectors):
    for name, v in vectors:
        _check(name, v, (D,), np.float64)


def _nchunks(v3):
    """(number of per-thread runs, parallel?) for the flat v3."""
    if v3.size < PARALLEL_MIN_ELEMENTS:
        return 1, False
    return max(1, get_num_threads()), True


def _columns(vec, dtype, B):
    """Per-slice float64 vector -> v's dtype, repeated over the B columns of each slice."""
    vec = vec.astype(dtype)
    return vec if B == 1 else np.repeat(vec, B)


def _reduce(a3, b3, out):
    A, D, B = a3.shape
    if a3.size == 0:
        out[:] = 0.0
        return
    nchunks, par = _nchunks(a3)
    if B >= PLANES_MIN_B:
        f = _dot_planes_parallel if par else _dot_planes_serial
    else:
        f = _dot_columns_parallel if par else _dot_columns_serial
    f(a3.reshape(-1), b3.reshape(-1), D, B, nchunks, out)


def wn_sum_sq(v3, out):
    """out[d] = sum_{a,b} v3[a,d,b]^2 in float64: the squared norm ||v||_d^2.

    Salimans & Kingma (2016): w = g * v / ||v||, with the norm over every axis
    of the weight but `dim` (the middle axis of v3).
    """
    _check_big(v3)
    _check_vectors(v3.shape[1], ("out", out))
    _reduce(v3, v3, out)


def wn_dot(a3, b3, out):
    """out[d] = sum_{a,b} a3[a,d,b] * b3[a,d,b] in float64.

    With a3 = grad_w and b3 = v this is ||v||_d * grad_g_d of Salimans &
    Kingma (2016).
    """
    _check_big(a3, ("b3", b3))
    _check_vectors(a3.shape[1], ("out", out))
    _reduce(a3, b3, out)


def wn_scale(v3, scale, w3):
    """w3 = v3 * scale[d], in v3's dtype; scale = g/||v|| gives w = g * v/||v||."""
    _check_big(v3, ("w3", w3))
    A, D, B = v3.shape
    _check_vectors(D, ("scale", scale))
    if v3.size == 0:
        return
    dt = v3.dtype
    nchunks, par = _nchunks(v3)
    if B >= PLANES_MIN_B:
        f = _scale_planes_parallel if par else _scale_planes_serial
        f(v3.reshape(-1), D, B, nchunks, scale.astype(dt), w3.reshape(-1))
    else:
        f = _scale_columns_parallel if par else _scale_columns_serial
        f(v3.reshape(-1), D * B, nchunks, _columns(scale, dt, B), w3.reshape(-1))


def wn_backward_apply(gw3, v3, a, b, gv3):
    """gv3 = gw3 * a[d] - v3 * b[d], in v3's dtype.

    With a = g/||v|| and b = g * grad_g/||v||^2 this is
    grad_v = g/||v|| * (grad_w - grad_g * v/||v||) (Salimans & Kingma 2016).
    """
    _check_big(v3, ("gw3", gw3), ("gv3", gv3))
    A, D, B = v3.shape
    _check_vectors(D, ("a", a), ("b", b))
    if v3.size == 0:
        return
    dt = v3.dtype
    nchunks, par = _nchunks(v3)
    if B >= PLANES_MIN_B:
        f = _backward_apply_planes_parallel if par else _backward_apply_planes_serial
        f(gw3.reshape(-1), v3.reshape(-1), D, B, nchunks, a.astype(dt), b.astype(dt),
          gv3.reshape(-1))
    else:
        f = _backward_apply_columns_parallel if par else _backward_apply_columns_serial
        f(gw3.reshape(-1), v3.reshape(-1), D * B, nchunks, _columns(a, dt, B),
          _columns(b, dt, B), gv3.reshape(-1))
