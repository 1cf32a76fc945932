"""Weight normalization kernels for CUDA (numba.cuda), mirroring kernels/cpu/weight_norm.py.

Same four functions, arguments and meaning as tinynorm.kernels.cpu.weight_norm
(the math is in tinynorm/ops/weight_norm.py and docs/norms.md), plus a keyword
``threads`` (threads per block, a power of two up to 1024; None means
DEFAULT_THREADS). v is viewed as v3 (A, D, B); every statistic is per slice
d, strided across the A rows (the "cols" traversal):

    wn_sum_sq           out[d] = sum v^2                  (float64)
    wn_dot              out[d] = sum a * b                (float64)
    wn_scale            w  = v * scale[d]
    wn_backward_apply   gv = gw * a[d] - v * b[d]

Reductions use one block per slice d: each thread walks the slice's A*B
values with a stride of the block size, keeping a float64 register, and the
block sums the partials in shared memory with a tree of cuda.syncthreads()
steps. Elementwise kernels run a grid-stride loop over all elements
(slice = (i // B) % D) in v's dtype.
"""
import functools

import numpy as np
from numba import cuda, float64

from .host import (launch as _launch, Outputs as _Outputs, as_array as _as_array,
                   check_input as _check_input, check_vectors as _check_vectors,
                   device_input as _input, flat as _flat, grid as _grid, per_dtype as _per_dtype,
                   threads_or_default as _threads)
from .reduce import block_sum


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


@_per_dtype
def _scale_kernel(cast):
    @cuda.jit
    def kernel(v, D, B, s, w):
        for i in range(cuda.grid(1), v.shape[0], cuda.gridsize(1)):
            w[i] = v[i] * cast(s[(i // B) % D])

    return kernel


@_per_dtype
def _backward_apply_kernel(cast):
    @cuda.jit
    def kernel(gw, v, D, B, a, b, gv):
        for i in range(cuda.grid(1), v.shape[0], cuda.gridsize(1)):
            d = (i // B) % D
            gv[i] = gw[i] * cast(a[d]) - v[i] * cast(b[d])

    return kernel


# ---------------------------------------------------------------------------
# host side


def _reduce(name, a3, b3, out, threads):
    """out[d] = sum_{a,b} a3[a,d,b] * b3[a,d,b] in float64, one block per slice; b3 None: a3."""
    t = _threads(threads)
    a3, b3, out = map(_as_array, (a3, b3, out))
    A, D, B = _check_input(name, a3, "A, D, B", ("b3", b3))
    _check_vectors((D,), ("out", out))
    if D == 0:
        return
    res = _Outputs(out)
    da = _flat(_input(a3))
    db = da if b3 is None else _flat(_input(b3))
    _launch(_dot_kernel(t), D, t, da, db, A, D, B, res.device[0])
    res.copy_back()


def wn_sum_sq(v3, out, threads=None):
    """out[d] = sum_{a,b} v3[a,d,b]^2 in float64."""
    _reduce("v3", v3, None, out, threads)


def wn_dot(a3, b3, out, threads=None):
    """out[d] = sum_{a,b} a3[a,d,b] * b3[a,d,b] in float64."""
    _reduce("a3", a3, b3, out, threads)


def wn_scale(v3, scale, w3, threads=None):
    """w3 = v3 * scale[d], in v3's dtype."""
    t = _threads(threads)
    v3, scale, w3 = map(_as_array, (v3, scale, w3))
    A, D, B = _check_input("v3", v3, "A, D, B", ("w3", w3))
    _check_vectors((D,), ("scale", scale))
    size = A * D * B
    if size == 0:
        return
    res = _Outputs(w3)
    kernel = _scale_kernel(np.dtype(v3.dtype).type)
    _launch(kernel, _grid(size, t), t, _flat(_input(v3)), D, B, _input(scale), _flat(res.device[0]))
    res.copy_back()


def wn_backward_apply(gw3, v3, a, b, gv3, threads=None):
    """gv3 = gw3 * a[d] - v3 * b[d], in v3's dtype."""
    t = _threads(threads)
    gw3, v3, a, b, gv3 = map(_as_array, (gw3, v3, a, b, gv3))
    A, D, B = _check_input("v3", v3, "A, D, B", ("gw3", gw3), ("gv3", gv3))
    _check_vectors((D,), ("a", a), ("b", b))
    size = A * D * B
    if size == 0:
        return
    res = _Outputs(gv3)
    kernel = _backward_apply_kernel(np.dtype(v3.dtype).type)
    _launch(kernel, _grid(size, t), t, _flat(_input(gw3)), _flat(_input(v3)), D, B, _input(a),
            _input(b), _flat(res.device[0]))
    res.copy_back()
