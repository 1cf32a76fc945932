"""Local Response Normalization kernels for CUDA (numba.cuda), mirroring kernels/cpu/lrn.py.

Same functions, arguments and meaning as tinynorm.kernels.cpu.lrn (the math
is in tinynorm/ops/lrn.py and docs/norms.md), plus a keyword ``threads``
(threads per block). x is viewed as x3 (N, C, S).

One thread per (sample, spatial position), grid-stride; consecutive threads
read consecutive positions of a channel row, so loads coalesce. The thread
walks the channels in order: every divisor d_c is a direct float64 window sum
(n loads, no drift, a NaN stays inside its window); the backward pass slides a
float64 running sum of t_c = db_c a_c d_c^(-beta-1) over the mirrored window,
recomputed directly every REFRESH channels and whenever a slide cancels badly
(a term larger than LOSS times the result) or turns NaN.
d^-beta has the fast paths of the CPU kernels (beta 0.75 and 0.5); other
betas call pow, and the forward pass can store the scale for the backward.
"""
import math

import numpy as np
from numba import cuda, float64

from .host import (launch as _launch, Outputs as _Outputs, as_array as _as_array,
                   check_input as _check_input, device_input as _input, flat as _flat,
                   grid as _grid, per_dtype as _per_dtype, threads_or_default as _threads)

from ..cpu.lrn import LOSS, MODE_05, MODE_075, REFRESH, beta_mode


@cuda.jit(device=True)
def _divisor(x, base, C, S, c, lo, hi, k, an):
    acc = float64(0.0)
    for cc in range(max(c - lo, 0), min(c + hi, C - 1) + 1):
        v = float64(x[base + cc * S])
        acc += v * v
    return float64(k) + an * acc


@cuda.jit(device=True)
def _neg_pow(d, mode, beta):
    if mode == MODE_075:
        r = 1.0 / math.sqrt(d)
        return r * math.sqrt(r)
    if mode == MODE_05:
        return 1.0 / math.sqrt(d)
    return d ** -beta


@cuda.jit(device=True)
def _term(dy, x, sc, saved, base, C, S, c, lo, hi, k, an, mode, beta):
    """db_c * a_c * d_c^(-beta-1) in float64."""
    i = base + c * S
    d = _divisor(x, base, C, S, c, lo, hi, k, an)
    s = float64(sc[i]) if saved else _neg_pow(d, mode, beta)
    return float64(dy[i]) * x[i] * s / d


@cuda.jit(device=True)
def _term_window(dy, x, sc, saved, base, C, S, j, lo, hi, k, an, mode, beta):
    acc = float64(0.0)
    for c in range(max(j - hi, 0), min(j + lo, C - 1) + 1):
        acc += _term(dy, x, sc, saved, base, C, S, c, lo, hi, k, an, mode, beta)
    return acc


@_per_dtype
def _forward_kernel(cast):
    @cuda.jit
    def kernel(x, N, C, S, lo, hi, k, an, mode, beta, save, y, sc):
        for p in range(cuda.grid(1), N * S, cuda.gridsize(1)):
            n = p // S
            base = n * C * S + (p - n * S)
            for c in range(C):
                i = base + c * S
                s = _neg_pow(_divisor(x, base, C, S, c, lo, hi, k, an), mode, beta)
                if save:
                    sc[i] = cast(s)
                y[i] = x[i] * cast(s)

    return kernel


@_per_dtype
def _backward_kernel(cast):
    @cuda.jit
    def kernel(dy, x, N, C, S, lo, hi, k, an, mode, beta, coef, saved, sc, dx):
        for p in range(cuda.grid(1), N * S, cuda.gridsize(1)):
            n = p // S
            base = n * C * S + (p - n * S)
            w = float64(0.0)
            for j in range(C):
                if j % REFRESH == 0:
                    w = _term_window(dy, x, sc, saved, base, C, S, j, lo, hi, k, an, mode, beta)
                else:
                    p_in = float64(0.0)
                    q_out = float64(0.0)
                    if j + lo < C:
                        p_in = _term(dy, x, sc, saved, base, C, S, j + lo, lo, hi, k, an, mode,
                                     beta)
                    if j - hi - 1 >= 0:
                        q_out = _term(dy, x, sc, saved, base, C, S, j - hi - 1, lo, hi, k, an,
                                      mode, beta)
                    v = w + p_in - q_out
                    if not (max(abs(p_in), abs(q_out)) <= LOSS * abs(v)):
                        v = _term_window(dy, x, sc, saved, base, C, S, j, lo, hi, k, an,
                                         mode, beta)
                    w = v
                i = base + j * S
                if saved:
                    s = float64(sc[i])
                else:
                    s = _neg_pow(_divisor(x, base, C, S, j, lo, hi, k, an), mode, beta)
                dx[i] = cast(dy[i] * s - coef * x[i] * w)

    return kernel


# ---------------------------------------------------------------------------
# host side


def lrn_forward(x3, size, alpha, beta, k, y3, scale3=None, threads=None):
    """y3 = x3 * d^-beta, d = k + alpha/size * (window sum of x^2 over channels).

    The window of channel c is c - size//2 .. c + (size-1)//2 (zero padded,
    divisor always ``size``), as torch.nn.functional.local_response_norm.
    ``scale3`` (same shape and dtype, optional) receives d^-beta for
    lrn_backward; worth it only when beta has no fast path (see beta_mode).
    """
    t = _threads(threads)
    x3, y3, scale3 = map(_as_array, (x3, y3, scale3))
    N, C, S = _check_input("x3", x3, "N, C, S", ("y3", y3), ("scale3", scale3))
    assert size >= 1, f"size must be positive, got {size}"
    save = scale3 is not None
    if N * C * S == 0:
        return
    out = _Outputs(y3, scale3)
    sc = _flat(out.device[1]) if save else cuda.device_array(1, np.dtype(x3.dtype))
    kernel = _forward_kernel(np.dtype(x3.dtype).type)
    _launch(kernel, _grid(N * S, t), t, _flat(_input(x3)), N, C, S, size // 2, (size - 1) // 2,
            float(k), float(alpha) / size, beta_mode(beta), float(beta),
            save, _flat(out.device[0]), sc)
    out.copy_back()


def lrn_backward(dy3, x3, size, alpha, beta, k, scale3, dx3, threads=None):
    """dx3, the gradient of lrn_forward's y3 for the upstream gradient dy3, in x3's dtype.

    ``scale3`` is the d^-beta that lrn_forward stored, or None to recompute it.
    """
    t = _threads(threads)
    dy3, x3, dx3, scale3 = map(_as_array, (dy3, x3, dx3, scale3))
    N, C, S = _check_input("x3", x3, "N, C, S", ("dy3", dy3), ("dx3", dx3), ("scale3", scale3))
    assert size >= 1, f"size must be positive, got {size}"
    saved = scale3 is not None
    if N * C * S == 0:
        return
    out = _Outputs(dx3)
    sc = _flat(_input(scale3)) if saved else cuda.device_array(1, np.dtype(x3.dtype))
    kernel = _backward_kernel(np.dtype(x3.dtype).type)
    _launch(kernel, _grid(N * S, t), t, _flat(_input(dy3)), _flat(_input(x3)), N, C, S, size // 2,
            (size - 1) // 2, float(k), float(alpha) / size,
            beta_mode(beta), float(beta),
            2.0 * float(alpha) * float(beta) / size, saved, sc,
            _flat(out.device[0]))
    out.copy_back()
