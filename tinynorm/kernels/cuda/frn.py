"""Filter Response Normalization (+ TLU) kernels for CUDA (numba.cuda), mirroring kernels/cpu/frn.py.

Same functions, arguments and meaning as tinynorm.kernels.cpu.frn (the math
is in tinynorm/ops/frn.py and docs/norms.md), plus a keyword ``threads``
(threads per block, a power of two up to 1024). x is viewed as x3 (N, C, S);
each (n, c) plane of S values is one row of the "rows" traversal.

One block per plane (blocks stride over planes): threads sum their strided
share in float64, the block folds the partials in shared memory with a tree
of cuda.syncthreads() steps, and the same block then writes the plane's
outputs in x's dtype.
"""
import math

import numpy as np
from numba import cuda, float64

from .host import (launch as _launch, Outputs as _Outputs, as_array as _as_array,
                   check_input as _check_input, check_vectors as _check_vectors,
                   device_input as _input, flat as _flat, per_dtype as _per_dtype,
                   threads_or_default as _threads)
from .reduce import block_mean_sq, block_sum, block_sum2


MAX_BLOCKS = 4096


@_per_dtype
def _forward_kernel(cast, threads):
    @cuda.jit
    def kernel(x, P, C, S, gamma, beta, tau, has_tau, eps, z, rstd):
        buf = cuda.shared.array(threads, float64)
        tid = cuda.threadIdx.x
        for p in range(cuda.blockIdx.x, P, cuda.gridDim.x):
            c = p % C
            base = p * S
            r = 1.0 / math.sqrt(block_mean_sq(buf, x, base, S, tid, threads) + eps[c])
            if tid == 0:
                rstd[p] = r
            a = cast(gamma[c] * r)
            b = cast(beta[c])
            tc = cast(tau[c])
            for j in range(tid, S, threads):
                v = x[base + j] * a + b
                if has_tau and v < tc:
                    v = tc
                z[base + j] = v

    return kernel


@_per_dtype
def _backward_kernel(cast, threads):
    @cuda.jit
    def kernel(dz, x, P, C, S, gamma, beta, tau, has_tau, rstd, need_dx, dx,
               sum_dy, sum_dy_xhat, sum_dtau):
        sd = cuda.shared.array(threads, float64)
        sx = cuda.shared.array(threads, float64)
        st = cuda.shared.array(threads, float64)
        tid = cuda.threadIdx.x
        for p in range(cuda.blockIdx.x, P, cuda.gridDim.x):
            c = p % C
            base = p * S
            r = rstd[p]
            a = cast(gamma[c] * r)
            b = cast(beta[c])
            tc = cast(tau[c])
            ad = 0.0
            ax = 0.0
            at = 0.0
            for j in range(tid, S, threads):
                g = float64(dz[base + j])
                xv = x[base + j]
                my = 1.0
                if has_tau:
                    v = xv * a + b
                    my = 0.0 if v < tc else (0.5 if v == tc else 1.0)
                    at += g * (0.0 if v > tc else (0.5 if v == tc else 1.0))
                ad += g * my
                ax += g * my * xv
            ad, ax = block_sum2(sd, sx, ad, ax, tid, threads)
            at = block_sum(st, at, tid, threads)
            pxh = ax * r
            if tid == 0:
                sum_dy[p] = ad
                sum_dy_xhat[p] = pxh
                sum_dtau[p] = at
            if need_dx and S > 0:
                k = cast(gamma[c] * r * r * pxh / S)
                for j in range(tid, S, threads):
                    xv = x[base + j]
                    m = a
                    if has_tau:
                        v = xv * a + b
                        m = a if v > tc else (a * cast(0.5) if v == tc else cast(0.0))
                    dx[base + j] = dz[base + j] * m - xv * k

    return kernel


# ---------------------------------------------------------------------------
# host side


def _tau(tau, C):
    if tau is None:
        return _input(np.zeros(max(C, 1))), False
    tau = _as_array(tau)
    _check_vectors((C,), ("tau", tau))
    return _input(tau), True


def frn_forward(x3, gamma, beta, tau, eps, z3, rstd, threads=None):
    """z3 = max(gamma*x*r + beta, tau) per (n, c) plane, r = 1/sqrt(mean_s x^2 + eps[c]).

    ``tau`` None skips the TLU (z3 = y). gamma, beta, tau, eps are float64
    (C,); rstd (N, C) float64 is written for the backward pass.
    """
    t = _threads(threads)
    x3, gamma, beta, eps, z3, rstd = map(_as_array, (x3, gamma, beta, eps, z3, rstd))
    N, C, S = _check_input("x3", x3, "N, C, S", ("z3", z3))
    _check_vectors((C,), ("gamma", gamma), ("beta", beta), ("eps", eps))
    _check_vectors((N, C), ("rstd", rstd))
    tau, has_tau = _tau(tau, C)
    P = N * C
    if P == 0:
        return
    out = _Outputs(z3, rstd)
    kernel = _forward_kernel(np.dtype(x3.dtype).type, t)
    _launch(kernel, min(P, MAX_BLOCKS), t, _flat(_input(x3)), P, C, S, _input(gamma), _input(beta),
            tau, has_tau, _input(eps), _flat(out.device[0]),
            _flat(out.device[1]))
    out.copy_back()


def frn_backward(dz3, x3, gamma, beta, tau, rstd, dx3, sum_dy, sum_dy_xhat, sum_dtau,
                 threads=None):
    """dx3 of FRN(+TLU) and the per-plane sums (N, C) float64 of the parameter gradients.

    sum_dy = sum_s dy, sum_dy_xhat = sum_s dy*x*r, sum_dtau = sum_s dz*[y <= tau]
    (0 without TLU), with dy = dz*[y > tau] and ties split in halves. ``dx3``
    None skips dx.
    """
    t = _threads(threads)
    dz3, x3, gamma, beta, rstd, dx3, sum_dy, sum_dy_xhat, sum_dtau = map(
        _as_array, (dz3, x3, gamma, beta, rstd, dx3, sum_dy, sum_dy_xhat, sum_dtau))
    N, C, S = _check_input("x3", x3, "N, C, S", ("dz3", dz3), ("dx3", dx3))
    _check_vectors((C,), ("gamma", gamma), ("beta", beta))
    _check_vectors((N, C), ("rstd", rstd), ("sum_dy", sum_dy), ("sum_dy_xhat", sum_dy_xhat),
                   ("sum_dtau", sum_dtau))
    tau, has_tau = _tau(tau, C)
    need_dx = dx3 is not None
    P = N * C
    if P == 0:
        return
    out = _Outputs(sum_dy, sum_dy_xhat, sum_dtau, dx3)
    d = out.device
    dx_flat = _flat(d[3]) if need_dx else cuda.device_array(1, np.dtype(x3.dtype))
    kernel = _backward_kernel(np.dtype(x3.dtype).type, t)
    _launch(kernel, min(P, MAX_BLOCKS), t, _flat(_input(dz3)), _flat(_input(x3)), P, C, S,
            _input(gamma), _input(beta), tau, has_tau,
            _flat(_input(rstd)), need_dx, dx_flat,
            _flat(d[0]), _flat(d[1]), _flat(d[2]))
    out.copy_back()
