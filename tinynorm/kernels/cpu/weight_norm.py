"""WeightNorm kernels for the CPU (Numba); the math is in :mod:`tinynorm.ops.weight_norm`.

v is viewed as v3 (A, D, B) (A = size of the axes before `dim`, D = size of `dim`, B = size of
the axes after it; dim=None is (1, 1, size)) and every quantity is per slice d, over its A*B
values. Four functions, mirrored in kernels/cuda/weight_norm.py:

    wn_sum_sq           out[d] = sum v^2                  (float64)
    wn_dot              out[d] = sum a * b                (float64)
    wn_scale            w  = v * scale[d]
    wn_backward_apply   gv = gw * a[d] - v * b[d]

Arrays are C-contiguous; v3/gw3/w3/gv3 are float32 or float64 (one dtype per call), per-slice
vectors are float64 of shape (D,). Outputs are written into arrays the caller allocated.

Sums of squares and dot products are accumulated in float64 (a sum of squares has no
cancellation to guard against, so one pass suffices). Both traversals cut the flat array into
one run per thread (see :mod:`.loops`):

* planes: a run is walked (a, d) plane by plane, B values each, with one coefficient or
  accumulator per plane. Used when B >= PLANES_MIN_B (dim=0 of a Linear or Conv2d weight,
  dim=None).
* columns: the array is a sequence of rows of L = D*B columns; a run is walked row piece by
  row piece, with one accumulator (or coefficient) per column, vectorized along the row, the
  columns folded into slices at the end. Used for short planes (e.g. dim = last axis, B == 1).

Every kernel exists twice, compiled from one body: serial, and parallel with prange over
per-thread runs, the parallel one from PARALLEL_MIN_ELEMENTS values.

The only fast-math flags are REDUCE_MATH's, on the float64 reduction loops; a NaN in v or
grad_w reaches every output of its slice.
"""
import numpy as np
from numba import get_num_threads, prange

from . import host
from .jit import REDUCE_MATH, njit, serial_and_parallel
from .loops import fold_runs, walk_periods, walk_planes

PARALLEL_MIN_ELEMENTS = 1 << 15
PLANES_MIN_B = 32


# ---------------------------------------------------------------------------
# contiguous 1-D runs


@njit(fastmath=REDUCE_MATH)
def _dot(a, b):
    acc = 0.0
    for i in range(a.shape[0]):
        acc += np.float64(a[i]) * np.float64(b[i])
    return acc


@njit(fastmath=REDUCE_MATH)
def _dot_into(a, b, acc):
    for i in range(a.shape[0]):
        acc[i] += np.float64(a[i]) * np.float64(b[i])


@njit
def _scale(v, s, w):
    for i in range(v.shape[0]):
        w[i] = v[i] * s


@njit
def _scale_per_column(v, s, w):
    for i in range(v.shape[0]):
        w[i] = v[i] * s[i]


@njit
def _axpby(gw, v, a, b, gv):
    for i in range(v.shape[0]):
        gv[i] = gw[i] * a - v[i] * b


@njit
def _axpby_per_column(gw, v, a, b, gv):
    for i in range(v.shape[0]):
        gv[i] = gw[i] * a[i] - v[i] * b[i]


# ---------------------------------------------------------------------------
# reductions


@njit(forceinline=True)
def _dot_plane(args, pos, end, d):
    a1, b1, part, t = args
    part[t, d] += _dot(a1[pos:end], b1[pos:end])


@njit(forceinline=True)
def _dot_piece(args, pos, end, j):
    a1, b1, part, t = args
    _dot_into(a1[pos:end], b1[pos:end], part[t, j:j + (end - pos)])


def _dot_planes(a1, b1, D, B, nchunks, out):
    part = np.zeros((nchunks, D))
    for t in prange(nchunks):
        walk_planes(_dot_plane, (a1, b1, part, t), a1.shape[0], t, nchunks, B, D)
    fold_runs(part, out)


def _dot_columns(a1, b1, D, B, nchunks, out):
    L = D * B
    part = np.zeros((nchunks, L))
    for t in prange(nchunks):
        walk_periods(_dot_piece, (a1, b1, part, t), a1.shape[0], t, nchunks, L)
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


@njit(forceinline=True)
def _scale_plane(args, pos, end, d):
    v1, s, w1 = args
    _scale(v1[pos:end], s[d], w1[pos:end])


@njit(forceinline=True)
def _scale_piece(args, pos, end, j):
    v1, s, w1 = args
    _scale_per_column(v1[pos:end], s[j:j + (end - pos)], w1[pos:end])


@njit(forceinline=True)
def _axpby_plane(args, pos, end, d):
    gw1, v1, a, b, gv1 = args
    _axpby(gw1[pos:end], v1[pos:end], a[d], b[d], gv1[pos:end])


@njit(forceinline=True)
def _axpby_piece(args, pos, end, j):
    gw1, v1, a, b, gv1 = args
    n = end - pos
    _axpby_per_column(gw1[pos:end], v1[pos:end], a[j:j + n], b[j:j + n], gv1[pos:end])


def _scale_planes(v1, D, B, nchunks, s, w1):
    for t in prange(nchunks):
        walk_planes(_scale_plane, (v1, s, w1), v1.shape[0], t, nchunks, B, D)


def _scale_columns(v1, L, nchunks, s, w1):
    for t in prange(nchunks):
        walk_periods(_scale_piece, (v1, s, w1), v1.shape[0], t, nchunks, L)


def _backward_apply_planes(gw1, v1, D, B, nchunks, a, b, gv1):
    for t in prange(nchunks):
        walk_planes(_axpby_plane, (gw1, v1, a, b, gv1), v1.shape[0], t, nchunks, B, D)


def _backward_apply_columns(gw1, v1, L, nchunks, a, b, gv1):
    for t in prange(nchunks):
        walk_periods(_axpby_piece, (gw1, v1, a, b, gv1), v1.shape[0], t, nchunks, L)


_scale_planes_serial, _scale_planes_parallel = serial_and_parallel(_scale_planes)
_scale_columns_serial, _scale_columns_parallel = serial_and_parallel(_scale_columns)
_backward_apply_planes_serial, _backward_apply_planes_parallel = \
    serial_and_parallel(_backward_apply_planes)
_backward_apply_columns_serial, _backward_apply_columns_parallel = \
    serial_and_parallel(_backward_apply_columns)


# ---------------------------------------------------------------------------
# host wrappers


def _nchunks(v3):
    """(number of per-thread runs, parallel?) for the flat v3."""
    return host.parallel_runs(v3.size, None, PARALLEL_MIN_ELEMENTS, get_num_threads)


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
    """out[d] = sum_{a,b} v3[a,d,b]^2 in float64."""
    host.check_input("v3", v3, "ADB")
    host.check_vectors((v3.shape[1],), ("out", out))
    _reduce(v3, v3, out)


def wn_dot(a3, b3, out):
    """out[d] = sum_{a,b} a3[a,d,b] * b3[a,d,b] in float64."""
    host.check_input("v3", a3, "ADB", ("b3", b3))
    host.check_vectors((a3.shape[1],), ("out", out))
    _reduce(a3, b3, out)


def wn_scale(v3, scale, w3):
    """w3 = v3 * scale[d], in v3's dtype."""
    host.check_input("v3", v3, "ADB", ("w3", w3))
    A, D, B = v3.shape
    host.check_vectors((D,), ("scale", scale))
    if v3.size == 0:
        return
    dt = v3.dtype
    nchunks, par = _nchunks(v3)
    if B >= PLANES_MIN_B:
        f = _scale_planes_parallel if par else _scale_planes_serial
        f(v3.reshape(-1), D, B, nchunks, scale.astype(dt), w3.reshape(-1))
    else:
        f = _scale_columns_parallel if par else _scale_columns_serial
        f(v3.reshape(-1), D * B, nchunks, host.per_column(scale, dt, B), w3.reshape(-1))


def wn_backward_apply(gw3, v3, a, b, gv3):
    """gv3 = gw3 * a[d] - v3 * b[d], in v3's dtype."""
    host.check_input("v3", v3, "ADB", ("gw3", gw3), ("gv3", gv3))
    A, D, B = v3.shape
    host.check_vectors((D,), ("a", a), ("b", b))
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
        f(gw3.reshape(-1), v3.reshape(-1), D * B, nchunks, host.per_column(a, dt, B),
          host.per_column(b, dt, B), gv3.reshape(-1))
