"""RMSNorm kernels for CUDA (numba.cuda), mirroring kernels/cpu/rms_norm.py.

Same functions, arguments and meaning as tinynorm.kernels.cpu.rms_norm (the
math is in tinynorm/ops/rms_norm.py and docs/norms.md), plus a keyword
``threads`` (threads per block, a power of two up to 1024). x is viewed as
x2 (R, D).

rstd and dx take the "rows" traversal: one block per row (blocks stride over
rows); each thread sums its strided share of the row in float64, the block
folds the partials in shared memory with a tree of cuda.syncthreads() steps,
then every thread writes its share of the row in x's dtype. dw takes the
"cols" traversal (cols.column_sums): float64 partials over chunks of rows,
added in order.
"""
import math

import numpy as np
from numba import cuda, float64

from ...backend import is_cupy_array
from .cols import column_sums
from .host import (launch as _launch, Outputs as _Outputs, as_array as _as_array, check as _check,
                   check_input as _check_input, device_input as _input, flat as _flat,
                   grid as _grid, per_dtype as _per_dtype, threads_or_default as _threads)
from .reduce import block_mean_sq, block_sum


MAX_BLOCKS = 4096


@_per_dtype
def _forward_kernel(cast, threads):
    @cuda.jit
    def kernel(x, R, D, w, has_w, eps, y, rstd):
        buf = cuda.shared.array(threads, float64)
        tid = cuda.threadIdx.x
        for row in range(cuda.blockIdx.x, R, cuda.gridDim.x):
            base = row * D
            r = 1.0 / math.sqrt(block_mean_sq(buf, x, base, D, tid, threads) + eps)
            if tid == 0:
                rstd[row] = r
            a = cast(r)
            for j in range(tid, D, threads):
                if has_w:
                    y[base + j] = x[base + j] * a * w[j]
                else:
                    y[base + j] = x[base + j] * a

    return kernel


@_per_dtype
def _dx_kernel(cast, threads):
    @cuda.jit
    def kernel(dy, x, R, D, w, has_w, rstd, dx):
        buf = cuda.shared.array(threads, float64)
        tid = cuda.threadIdx.x
        for row in range(cuda.blockIdx.x, R, cuda.gridDim.x):
            base = row * D
            acc = 0.0
            for j in range(tid, D, threads):
                g = float64(dy[base + j])
                if has_w:
                    g *= w[j]
                acc += g * x[base + j]
            s = block_sum(buf, acc, tid, threads)
            r = rstd[row]
            a = cast(r)
            k = cast(s * r * r * r / D)
            for j in range(tid, D, threads):
                if has_w:
                    dx[base + j] = dy[base + j] * w[j] * a - x[base + j] * k
                else:
                    dx[base + j] = dy[base + j] * a - x[base + j] * k

    return kernel


@cuda.jit
def _zero_kernel(a):
    for j in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[j] = 0.0


# ---------------------------------------------------------------------------
# host side


def _weight(weight, x2):
    """(device weight, 1) or, without a weight, (a placeholder vector, 0)."""
    if weight is None:
        if is_cupy_array(x2):
            import cupy
            return cupy.ones(1, x2.dtype), 0
        return _input(np.ones(1, np.dtype(x2.dtype))), 0
    weight = _as_array(weight)
    _check("weight", weight, (int(x2.shape[1]),), x2.dtype)
    return _input(weight), 1


def rms_forward(x2, weight, eps, y2, rstd, threads=None):
    """y2 = x2 * rstd[row] * weight with rstd = 1/sqrt(mean(x^2 over the row) + eps).

    ``weight`` is (D,) in x2's dtype or None (no scaling); rstd (R,) float64
    is written for the backward pass.
    """
    t = _threads(threads)
    x2, y2, rstd = map(_as_array, (x2, y2, rstd))
    R, D = _check_input("x2", x2, "R, D", ("y2", y2))
    _check("rstd", rstd, (R,), np.float64)
    w, has_w = _weight(weight, x2)
    if R == 0:
        return
    out = _Outputs(y2, rstd)
    kernel = _forward_kernel(np.dtype(x2.dtype).type, t)
    _launch(kernel, min(R, MAX_BLOCKS), t, _flat(_input(x2)), R, D, w, has_w, float(eps),
            _flat(out.device[0]), out.device[1])
    out.copy_back()


def rms_backward(dy2, x2, weight, rstd, dx2, dw, threads=None):
    """dx2 = rstd*(w*dy - x*rstd^2/D * sum(w*dy*x)) and dw = sum_rows dy*x*rstd.

    Either output may be None to skip it; dw is (D,) float64.
    """
    t = _threads(threads)
    dy2, x2, rstd = map(_as_array, (dy2, x2, rstd))
    R, D = _check_input("x2", x2, "R, D", ("dy2", dy2))
    _check("rstd", rstd, (R,), np.float64)
    w, has_w = _weight(weight, x2)
    dyd, xd, rd = _input(dy2), _input(x2), _input(rstd)
    if dx2 is not None:
        dx2 = _as_array(dx2)
        _check("dx2", dx2, x2.shape, x2.dtype)
        if R > 0 and D > 0:
            out = _Outputs(dx2)
            kernel = _dx_kernel(np.dtype(x2.dtype).type, t)
            _launch(kernel, min(R, MAX_BLOCKS), t, _flat(dyd), _flat(xd), R, D, w, has_w, rd,
                    _flat(out.device[0]))
            out.copy_back()
    if dw is not None:
        dw = _as_array(dw)
        _check("dw", dw, (D,), np.float64)
        if D > 0:
            out = _Outputs(dw)
            if R > 0:
                column_sums(_flat(dyd), _flat(xd), R, 1, D, None, rd, out.device[0], None, t)
            else:
                _launch(_zero_kernel, _grid(D, t), t, out.device[0])
            out.copy_back()
