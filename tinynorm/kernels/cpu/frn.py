"""FRN (+ TLU) kernels for the CPU (Numba); the math is in :mod:`tinynorm.ops.frn`.

x is viewed as x3 (N, C, S) and read as the rows of (N*C, S): one statistic r per (n, c)
plane, each thread a run of planes (the "rows" traversal of the package doc).

    frn_forward    z (or y), r per plane
    frn_backward   dx and the per-plane sums (sum dy, P, dtau) the host folds over n

Arrays are C-contiguous; x3/dz3/z3/dx3 are float32 or float64 (one dtype per
call); per-channel vectors gamma, beta, tau, eps are float64 (C,); r and the
per-plane sums are float64 (N, C). Sums accumulate in float64; the
elementwise passes run in x's dtype. The backward pass recomputes y from x
and r rather than saving it.

Every kernel exists twice, compiled from one body: serial, and parallel with
prange over runs of planes; the host wrappers pick the parallel one when x3
has at least PARALLEL_MIN_ELEMENTS elements. Only 'reassoc' and 'contract'
are used as fast-math flags, on the float64 sums ('reassoc' alone where y is
recomputed, so that the TLU mask of the backward pass sees the same y as the
forward pass): a NaN in a plane reaches every output of that plane. A NaN y
passes through the TLU (max(NaN, tau) is NaN).
"""
import numpy as np
from numba import get_num_threads, prange

from . import host
from .jit import njit, serial_and_parallel
from .loops import sum_sq

PARALLEL_MIN_ELEMENTS = 1 << 15
_SUMS_MATH = {"reassoc"}


@njit
def _affine(x, a, b, y):
    for i in range(x.shape[0]):
        y[i] = x[i] * a + b


@njit
def _affine_tlu(x, a, b, tau, z):
    for i in range(x.shape[0]):
        v = x[i] * a + b
        z[i] = tau if v < tau else v


@njit(fastmath=_SUMS_MATH)
def _plane_sums(dz, x, a, b, tau, has_tau):
    """(sum dy, sum dy*x, sum dtau) with dy the part of dz that reaches y."""
    sd = 0.0
    sx = 0.0
    st = 0.0
    if has_tau:
        for i in range(x.shape[0]):
            v = x[i] * a + b
            g = np.float64(dz[i])
            my = 0.0 if v < tau else (0.5 if v == tau else 1.0)
            mt = 0.0 if v > tau else (0.5 if v == tau else 1.0)
            gy = g * my
            sd += gy
            sx += gy * x[i]
            st += g * mt
    else:
        for i in range(x.shape[0]):
            g = np.float64(dz[i])
            sd += g
            sx += g * x[i]
    return sd, sx, st


@njit
def _dx(dz, x, a, b, tau, has_tau, k, dx):
    if has_tau:
        half = a * x.dtype.type(0.5)
        for i in range(x.shape[0]):
            v = x[i] * a + b
            m = a if v > tau else (half if v == tau else x.dtype.type(0.0))
            dx[i] = dz[i] * m - x[i] * k
    else:
        for i in range(x.shape[0]):
            dx[i] = dz[i] * a - x[i] * k


def _forward(x2, C, gamma, beta, tau, has_tau, eps, nchunks, z2, rstd):
    P, S = x2.shape
    for t in prange(nchunks):
        for p in range(P * t // nchunks, P * (t + 1) // nchunks):
            c = p % C
            r = 1.0 / np.sqrt(sum_sq(x2[p]) / S + eps[c])
            rstd[p] = r
            dt = x2.dtype.type
            a = dt(gamma[c] * r)
            b = dt(beta[c])
            if has_tau:
                _affine_tlu(x2[p], a, b, dt(tau[c]), z2[p])
            else:
                _affine(x2[p], a, b, z2[p])


def _backward(dz2, x2, C, gamma, beta, tau, has_tau, rstd, need_dx, nchunks,
              dx2, sum_dy, sum_dy_xhat, sum_dtau):
    P, S = x2.shape
    for t in prange(nchunks):
        for p in range(P * t // nchunks, P * (t + 1) // nchunks):
            c = p % C
            r = rstd[p]
            dt = x2.dtype.type
            a = dt(gamma[c] * r)
            b = dt(beta[c])
            tc = dt(tau[c]) if has_tau else dt(0.0)
            sd, sx, st = _plane_sums(dz2[p], x2[p], a, b, tc, has_tau)
            pxh = sx * r
            sum_dy[p] = sd
            sum_dy_xhat[p] = pxh
            sum_dtau[p] = st
            if need_dx:
                _dx(dz2[p], x2[p], a, b, tc, has_tau, dt(gamma[c] * r * r * pxh / S), dx2[p])


_forward_serial, _forward_parallel = serial_and_parallel(_forward)
_backward_serial, _backward_parallel = serial_and_parallel(_backward)


# ---------------------------------------------------------------------------
# host wrappers


def _tau(tau, C):
    if tau is None:
        return np.zeros(C), False
    host.check_vectors((C,), ("tau", tau))
    return tau, True


def _nchunks(x3):
    return host.parallel_runs(x3.size, x3.shape[0] * x3.shape[1], PARALLEL_MIN_ELEMENTS,
                              get_num_threads)


def frn_forward(x3, gamma, beta, tau, eps, z3, rstd):
    """z3 = max(gamma*x*r + beta, tau) per (n, c) plane, r = 1/sqrt(mean_s x^2 + eps[c]).

    ``tau`` None skips the TLU (z3 = y). gamma, beta, tau, eps are float64
    (C,); rstd (N, C) float64 is written for the backward pass.
    """
    host.check_input("x3", x3, "NCS", ("z3", z3))
    N, C, S = x3.shape
    host.check_vectors((C,), ("gamma", gamma), ("beta", beta), ("eps", eps))
    host.check_vectors((N, C), ("rstd", rstd))
    tau, has_tau = _tau(tau, C)
    if N * C == 0:
        return
    if S == 0:
        rstd[:] = 1.0 / np.sqrt(eps)
        return
    nchunks, par = _nchunks(x3)
    f = _forward_parallel if par else _forward_serial
    f(x3.reshape(N * C, S), C, gamma, beta, tau, has_tau, eps, nchunks,
      z3.reshape(N * C, S), rstd.reshape(N * C))


def frn_backward(dz3, x3, gamma, beta, tau, rstd, dx3, sum_dy, sum_dy_xhat, sum_dtau):
    """dx3 of FRN(+TLU) and the per-plane sums (N, C) float64 of the parameter gradients.

    sum_dy = sum_s dy, sum_dy_xhat = sum_s dy*x*r, sum_dtau = sum_s dz*[y <= tau]
    (0 without TLU), with dy = dz*[y > tau] and ties split in halves. ``dx3``
    None skips dx. From these: dgamma = sum_n sum_dy_xhat, dbeta = sum_n sum_dy,
    dtau = sum_n sum_dtau, deps = -1/2 sum_n rstd^2 * gamma * sum_dy_xhat.
    """
    host.check_input("x3", x3, "NCS", ("dz3", dz3))
    N, C, S = x3.shape
    host.check_vectors((C,), ("gamma", gamma), ("beta", beta))
    host.check_vectors((N, C), ("rstd", rstd), ("sum_dy", sum_dy), ("sum_dy_xhat", sum_dy_xhat),
                   ("sum_dtau", sum_dtau))
    tau, has_tau = _tau(tau, C)
    need_dx = dx3 is not None
    host.check("dx3", dx3, x3.shape, x3.dtype)
    if N * C * S == 0:
        for v in (sum_dy, sum_dy_xhat, sum_dtau):
            v[...] = 0.0
        return
    nchunks, par = _nchunks(x3)
    f = _backward_parallel if par else _backward_serial
    f(dz3.reshape(N * C, S), x3.reshape(N * C, S), C, gamma, beta, tau, has_tau,
      rstd.reshape(N * C), need_dx, nchunks,
      dx3.reshape(N * C, S) if need_dx else np.empty((0, 0), x3.dtype),
      sum_dy.reshape(N * C), sum_dy_xhat.reshape(N * C), sum_dtau.reshape(N * C))
