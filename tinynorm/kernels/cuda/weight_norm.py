"""Weight normalization kernels for CUDA (numba.cuda), mirroring kernels/cpu.

Weight Normalization (Salimans & Kingma, 2016) writes w = g * v / ||v||, the
norm over every axis but `dim`; with v viewed as v3 of shape (A, D, B):

    ||v||_d  = sqrt(sum_{a,b} v[a,d,b]^2)
    w        = v * g_d / ||v||_d
    grad_g_d = sum_{a,b} grad_w * v / ||v||_d
    grad_v   = g_d/||v||_d * (grad_w - grad_g_d * v / ||v||_d)

Same four functions, arguments and meaning as tinynorm.kernels.cpu.weight_norm,
plus a keyword `threads` (threads per block, a power of two up to 1024;
None means DEFAULT_THREADS):

    wn_sum_sq           out[d] = sum v^2                  (float64)
    wn_dot              out[d] = sum a * b                (float64)
    wn_scale            w  = v * scale[d]
    wn_backward_apply   gv = gw * a[d] - v * b[d]

Arrays may be NumPy arrays (copied to the device and, for outputs, back) or
device arrays, which are used in place.

Reductions use one block per slice d: each thread walks the slice's A*B
values with a stride of the block size, keeping a float64 register, and the
block sums the partials in shared memory with a tree of cuda.syncthreads()
steps (no warp shuffles, so the kernels run under NUMBA_ENABLE_CUDASIM=1).
Elementwise kernels run a grid-stride loop over all elements
(slice = (i // B) % D) in v's dtype.
"""
import functools

import numpy as np
from numba import cuda, float64, from_dtype

from .host import (launch as _launch, Outputs as _Outputs, as_array as _as_array, check as _check,
                   device_input as _input, flat as _flat, grid as _grid,
                   threads_or_default as _threads)
from .reduce import block_sum


DEFAULT_THREADS = 256


def _block(threads):
    return _threads(DEFAULT_THREADS if threads is None else threads)


@functools.lru_cache(maxsize=None)
def _dot_kernel(threads):
    @cuda.jit
    def kernel(a, b, A, D, B, out):
        sp = cuda.shared.array(threads, float64)
        d = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        M = A * B
        acc = 0.0
        for j in range(tid, M, threads):
            r = j // B
            i = (r * D + d) * B + (j - r * B)
            acc += float64(a[i]) * float64(b[i])
        acc = block_sum(sp, acc, tid, threads)
        if tid == 0:
            out[d] = acc

    return kernel


@functools.lru_cache(maxsize=None)
def _scale_kernel(dtype):
    cast = from_dtype(np.dtype(dtype))

    @cuda.jit
    def kernel(v, D, B, s, w):
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, v.shape[0], stride):
            w[i] = v[i] * cast(s[(i // B) % D])

    return kernel


@functools.lru_cache(maxsize=None)
def _backward_apply_kernel(dtype):
    cast = from_dtype(np.dtype(dtype))

    @cuda.jit
    def kernel(gw, v, D, B, a, b, gv):
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, v.shape[0], stride):
            d = (i // B) % D
            gv[i] = gw[i] * cast(a[d]) - v[i] * cast(b[d])

    return kernel


# ---------------------------------------------------------------------------
# host side


def _check_big(v3, *others):
    assert len(v3.shape) == 3, f"v3 must be 3-D (A, D, B), got shape {v3.shape}"
    assert np.dtype(v3.dtype) in (np.float32, np.float64), f"unsupported dtype {v3.dtype}"
    for name, a in others:
        _check(name, a, v3.shape, v3.dtype)


def _check_vectors(D, *vectors):
    for name, v in vectors:
        _check(name, v, (D,), np.float64)


def _reduce(a3, b3, out, threads):
    A, D, B = (int(s) for s in a3.shape)
    if D == 0:
        return
    t = _block(threads)
    res = _Outputs(out)
    da = _flat(_input(a3))
    db = da if b3 is a3 else _flat(_input(b3))
    _launch(_dot_kernel(t), D, t, da, db, A, D, B, res.device[0])
    res.copy_back()


def wn_sum_sq(v3, out, threads=None):
    """out[d] = sum_{a,b} v3[a,d,b]^2 in float64: the squared norm ||v||_d^2.

    Salimans & Kingma (2016): w = g * v / ||v||, with the norm over every axis
    of the weight but `dim` (the middle axis of v3).
    """
    _block(threads)
    v3, out = map(_as_array, (v3, out))
    _check_big(v3)
    _check_vectors(int(v3.shape[1]), ("out", out))
    _reduce(v3, v3, out, threads)


def wn_dot(a3, b3, out, threads=None):
    """out[d] = sum_{a,b} a3[a,d,b] * b3[a,d,b] in float64.

    With a3 = grad_w and b3 = v this is ||v||_d * grad_g_d of Salimans &
    Kingma (2016).
    """
    _block(threads)
    a3, b3, out = map(_as_array, (a3, b3, out))
    _check_big(a3, ("b3", b3))
    _check_vectors(int(a3.shape[1]), ("out", out))
    _reduce(a3, b3, out, threads)


def wn_scale(v3, scale, w3, threads=None):
    """w3 = v3 * scale[d], in v3's dtype; scale = g/||v|| gives w = g * v/||v||."""
    t = _block(threads)
    v3, scale, w3 = map(_as_array, (v3, scale, w3))
    _check_big(v3, ("w3", w3))
    A, D, B = (int(s) for s in v3.shape)
    _check_vectors(D, ("scale", scale))
    size = A * D * B
    if size == 0:
        return
    res = _Outputs(w3)
    kernel = _scale_kernel(np.dtype(v3.dtype).type)
    _launch(kernel, _grid(size, t), t, _flat(_input(v3)), D, B, _input(scale), _flat(res.device[0]))
    res.copy_back()


def wn_backward_apply(gw3, v3, a, b, gv3, threads=None):
    """gv3 = gw3 * a[d] - v3 * b[d], in v3's dtype.

    With a = g/||v|| and b = g * grad_g/||v||^2 this is
    grad_v = g/||v|| * (grad_w - grad_g * v/||v||) (Salimans & Kingma 2016).
    """
    t = _block(threads)
    gw3, v3, a, b, gv3 = map(_as_array, (gw3, v3, a, b, gv3))
    _check_big(v3, ("gw3", gw3), ("gv3", gv3))
    A, D, B = (int(s) for s in v3.shape)
    _check_vectors(D, ("a", a), ("b", b))
    size = A * D * B
    if size == 0:
        return
    res = _Outputs(gv3)
    kernel = _backward_apply_kernel(np.dtype(v3.dtype).type)
    _launch(kernel, _grid(size, t), t, _flat(_input(gw3)), _flat(_input(v3)), D, B, _input(a),
            _input(b), _flat(res.device[0]))
    res.copy_back()
