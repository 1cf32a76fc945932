"""Batch normalization kernels for CUDA (numba.cuda), mirroring kernels/cpu.

Batch Normalization (Ioffe & Szegedy, 2015) normalizes every channel c of x,
viewed as x3 of shape (N, C, S), over its m = N*S values:

    mean_c = 1/m sum_{n,s} x[n,c,s]          var_c = 1/m sum_{n,s} (x[n,c,s] - mean_c)^2
    y      = (x - mean_c) * gamma_c / sqrt(var_c + eps) + beta_c
    dx     = gamma_c*invstd_c/m * (m*dy - sum(dy) - xhat*sum(dy*xhat))

Same four functions, arguments and meaning as tinynorm.kernels.cpu.batch_norm,
plus a keyword `threads` (threads per block, a power of two up to 1024;
None means DEFAULT_THREADS):

    bn_stats            local (count, mean, M2) per channel
    bn_forward_apply    y  = (x - mean) * scale + shift
    bn_backward_reduce  local (sum dy, sum dy*(x - mean)) per channel
    bn_backward_apply   dx = (dy - mean_dy - (x - mean) * k) * g

Arrays may be NumPy arrays (copied to the device and, for outputs, back) or
device arrays (numba device arrays, or anything with __cuda_array_interface__
such as CuPy arrays), which are used in place.

Reductions use one block per channel: each thread walks the channel's N*S
values with a stride of the block size and keeps float64 registers (Welford's
update for the statistics), then the block combines the threads' partials in
shared memory with a tree of cuda.syncthreads() steps, using the pairwise
formula of Chan, Golub & LeVeque (1979) for (count, mean, M2):

    n = na + nb,  delta = mean_b - mean_a,
    mean = mean_a + delta * nb/n,  M2 = M2_a + M2_b + delta^2 * na*nb/n

No warp shuffles are used, so every kernel also runs under the CUDA simulator
(NUMBA_ENABLE_CUDASIM=1). Elementwise kernels run a grid-stride loop over all
elements (channel = (i // S) % C) in x's dtype, with the float64 per-channel
coefficients cast once per element's channel load.
"""
import functools

import numpy as np
from numba import cuda, float64, from_dtype

from .host import (launch as _launch, Outputs as _Outputs, as_array as _as_array, check as _check,
                   device_input as _input, flat as _flat, grid as _grid,
                   threads_or_default as _threads, workspace as _workspace)
from .reduce import block_chan_merge, block_sum2, sum2_for


@functools.lru_cache(maxsize=None)
def _stats_kernel(threads):
    @cuda.jit
    def kernel(x, N, C, S, count, mean, m2):
        sn = cuda.shared.array(threads, float64)
        sm = cuda.shared.array(threads, float64)
        sq = cuda.shared.array(threads, float64)
        c = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        M = N * S
        n_t = 0.0
        m_t = 0.0
        q_t = 0.0
        for j in range(tid, M, threads):
            r = j // S
            v = float64(x[(r * C + c) * S + (j - r * S)])
            n_t += 1.0
            d = v - m_t
            m_t += d / n_t
            q_t += d * (v - m_t)
        n_c, m_c, q_c = block_chan_merge(sn, sm, sq, n_t, m_t, q_t, tid, threads)
        if tid == 0:
            count[c] = n_c
            mean[c] = m_c
            m2[c] = q_c

    return kernel


@functools.lru_cache(maxsize=None)
def _backward_reduce_kernel(threads):
    @cuda.jit
    def kernel(dy, x, N, C, S, mean, sum_dy, sum_dy_xmu):
        sd = cuda.shared.array(threads, float64)
        sx = cuda.shared.array(threads, float64)
        c = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        M = N * S
        mc = mean[c]
        a = 0.0
        b = 0.0
        for j in range(tid, M, threads):
            r = j // S
            i = (r * C + c) * S + (j - r * S)
            g = float64(dy[i])
            a += g
            b += g * (x[i] - mc)
        a, b = block_sum2(sd, sx, a, b, tid, threads)
        if tid == 0:
            sum_dy[c] = a
            sum_dy_xmu[c] = b

    return kernel


@functools.lru_cache(maxsize=None)
def _forward_apply_kernel(dtype):
    cast = from_dtype(np.dtype(dtype))

    @cuda.jit
    def kernel(x, C, S, mean, scale, shift, y):
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, x.shape[0], stride):
            c = (i // S) % C
            y[i] = (x[i] - cast(mean[c])) * cast(scale[c]) + cast(shift[c])

    return kernel


@functools.lru_cache(maxsize=None)
def _backward_apply_kernel(dtype):
    cast = from_dtype(np.dtype(dtype))

    @cuda.jit
    def kernel(dy, x, C, S, mean, mean_dy, k, g, dx):
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, x.shape[0], stride):
            c = (i // S) % C
            head = cast(mean[c])
            tail = cast(mean[c] - float64(head))
            dx[i] = ((dy[i] - cast(mean_dy[c]) - ((x[i] - head) - tail) * cast(k[c]))
                     * cast(g[c]))

    return kernel


# ---------------------------------------------------------------------------
# plane layout (S >= PLANE_MIN): channel c's N planes of S values split over P blocks


@functools.lru_cache(maxsize=None)
def _plane_partials_kernel(threads, backward):
    """Partial sums of block (c, p) over planes n = p, p + P, ... of channel c, in float64.

    Statistics (backward=0): sums of x - x[0, c, 0] and of its square (the
    shifted-data algorithm; every partial of a channel shares the shift, so the
    finish step just adds them). Backward (backward=1): sums of dy and of
    dy * (x - mean[c]). part has shape (2, C, P).
    """
    sum2 = sum2_for(threads)

    @cuda.jit
    def kernel(x, dy, N, C, S, P, mean, part):
        sa = cuda.shared.array(threads, float64)
        sb = cuda.shared.array(threads, float64)
        tid = cuda.threadIdx.x
        for cp in range(cuda.blockIdx.x, C * P, cuda.gridDim.x):
            c = cp // P
            p = cp - c * P
            shift = mean[c] if backward else float64(x[c * S])
            a = 0.0
            b = 0.0
            for n in range(p, N, P):
                base = (n * C + c) * S
                s = tid
                while s + 3 * threads < S:
                    d0 = float64(x[base + s]) - shift
                    d1 = float64(x[base + s + threads]) - shift
                    d2 = float64(x[base + s + 2 * threads]) - shift
                    d3 = float64(x[base + s + 3 * threads]) - shift
                    if backward:
                        g0 = float64(dy[base + s])
                        g1 = float64(dy[base + s + threads])
                        g2 = float64(dy[base + s + 2 * threads])
                        g3 = float64(dy[base + s + 3 * threads])
                        a += (g0 + g1) + (g2 + g3)
                        b += (g0 * d0 + g1 * d1) + (g2 * d2 + g3 * d3)
                    else:
                        a += (d0 + d1) + (d2 + d3)
                        b += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
                    s += 4 * threads
                while s < S:
                    d0 = float64(x[base + s]) - shift
                    if backward:
                        g0 = float64(dy[base + s])
                        a += g0
                        b += g0 * d0
                    else:
                        a += d0
                        b += d0 * d0
                    s += threads
            a, b = sum2(sa, sb, a, b, tid, threads)
            if tid == 0:
                part[cp] = a
                part[C * P + cp] = b

    return kernel


@cuda.jit
def _stats_finish_kernel(x, N, C, S, P, part, count, mean, m2):
    """count = N*S, mean = shift + S1/count, M2 = S2 - S1^2/count from the (2, C, P) partials."""
    for c in range(cuda.grid(1), C, cuda.gridsize(1)):
        s1 = 0.0
        s2 = 0.0
        for p in range(P):
            s1 += part[c * P + p]
            s2 += part[C * P + c * P + p]
        n = float64(N * S)
        if n > 0:
            q = s2 - s1 * s1 / n
            count[c] = n
            mean[c] = float64(x[c * S]) + s1 / n
            m2[c] = q if q > 0.0 else 0.0
        else:
            count[c] = 0.0
            mean[c] = 0.0
            m2[c] = 0.0


@cuda.jit
def _sums_finish_kernel(C, P, part, sum_a, sum_b):
    for c in range(cuda.grid(1), C, cuda.gridsize(1)):
        a = 0.0
        b = 0.0
        for p in range(P):
            a += part[c * P + p]
            b += part[C * P + c * P + p]
        sum_a[c] = a
        sum_b[c] = b


@functools.lru_cache(maxsize=None)
def _plane_apply_kernel(threads, dtype, backward):
    """One plane (n, c) per block step; per-channel coefficients are loaded once per plane.

    Forward: y = (x - mean) * scale + shift. Backward:
    dx = (dy - mean_dy - ((x - head) - tail) * k) * g with the float64 mean as head + tail.
    """
    cast = from_dtype(np.dtype(dtype))

    @cuda.jit
    def kernel(x, dy, NC, C, S, mean, u, v, g, out):
        tid = cuda.threadIdx.x
        for q in range(cuda.blockIdx.x, NC, cuda.gridDim.x):
            c = q % C
            base = q * S
            head = cast(mean[c])
            if backward:
                tail = cast(mean[c] - float64(head))
                md = cast(u[c])
                kc = cast(v[c])
                gc = cast(g[c])
            else:
                tail = cast(0)
                md = cast(u[c])
                kc = cast(v[c])
                gc = cast(0)
            s = tid
            while s + 3 * threads < S:
                i = base + s
                x0 = x[i]
                x1 = x[i + threads]
                x2 = x[i + 2 * threads]
                x3 = x[i + 3 * threads]
                if backward:
                    e0 = dy[i]
                    e1 = dy[i + threads]
                    e2 = dy[i + 2 * threads]
                    e3 = dy[i + 3 * threads]
                    out[i] = (e0 - md - ((x0 - head) - tail) * kc) * gc
                    out[i + threads] = (e1 - md - ((x1 - head) - tail) * kc) * gc
                    out[i + 2 * threads] = (e2 - md - ((x2 - head) - tail) * kc) * gc
                    out[i + 3 * threads] = (e3 - md - ((x3 - head) - tail) * kc) * gc
                else:
                    out[i] = (x0 - head) * md + kc
                    out[i + threads] = (x1 - head) * md + kc
                    out[i + 2 * threads] = (x2 - head) * md + kc
                    out[i + 3 * threads] = (x3 - head) * md + kc
                s += 4 * threads
            while s < S:
                i = base + s
                if backward:
                    out[i] = (dy[i] - md - ((x[i] - head) - tail) * kc) * gc
                else:
                    out[i] = (x[i] - head) * md + kc
                s += threads

    return kernel


PLANE_MIN = 32
MAX_BLOCKS = 65535
TARGET_BLOCKS = 2048


def _splits(N, C):
    """Blocks per channel for the plane reductions: about TARGET_BLOCKS blocks in all, at most N."""
    return max(1, min(N, -(-TARGET_BLOCKS // max(C, 1))))


def _plane_partials(x, dy, N, C, S, mean, t, backward):
    P = _splits(N, C)
    part = _workspace(2 * C * P, np.float64, x)
    _launch(_plane_partials_kernel(t, backward), min(C * P, MAX_BLOCKS), t, x,
            x if dy is None else dy, N, C, S, P, mean, part)
    return part, P


# ---------------------------------------------------------------------------
# host side


def _check_big(x3, *others):
    assert len(x3.shape) == 3, f"x3 must be 3-D (N, C, S), got shape {x3.shape}"
    assert np.dtype(x3.dtype) in (np.float32, np.float64), f"unsupported dtype {x3.dtype}"
    for name, a in others:
        _check(name, a, x3.shape, x3.dtype)


def _check_vectors(C, *vectors):
    for name, v in vectors:
        _check(name, v, (C,), np.float64)


def bn_stats(x3, count, mean, m2, threads=None):
    """Per-channel count, mean and M2 = sum (x - mean)^2 of x3 (N, C, S).

    count[c] = N*S, mean[c] = 1/count sum_{n,s} x[n,c,s],
    m2[c] = sum_{n,s} (x[n,c,s] - mean[c])^2, all float64; the biased
    variance of Ioffe & Szegedy (2015) is m2/count. An empty channel gives
    (0, 0, 0), which Chan's merge treats as absent.
    """
    t = _threads(threads)
    x3, count, mean, m2 = map(_as_array, (x3, count, mean, m2))
    _check_big(x3)
    N, C, S = (int(v) for v in x3.shape)
    _check_vectors(C, ("count", count), ("mean", mean), ("m2", m2))
    if C == 0:
        return
    out = _Outputs(count, mean, m2)
    xd = _flat(_input(x3))
    if S >= PLANE_MIN and t % 32 == 0:
        part, P = _plane_partials(xd, None, N, C, S, out.device[1], t, 0)
        _launch(_stats_finish_kernel, _grid(C, t), t, xd, N, C, S, P, part, *out.device)
    else:
        _launch(_stats_kernel(t), C, t, xd, N, C, S, *out.device)
    out.copy_back()


def bn_forward_apply(x3, mean, scale, shift, y3, threads=None):
    """y3 = (x3 - mean[c]) * scale[c] + shift[c], computed in x3's dtype.

    With scale = gamma * invstd and shift = beta this is the BatchNorm
    transform y = gamma * (x - mean) / sqrt(var + eps) + beta
    (Ioffe & Szegedy 2015, Algorithm 1).
    """
    t = _threads(threads)
    x3, mean, scale, shift, y3 = map(_as_array, (x3, mean, scale, shift, y3))
    _check_big(x3, ("y3", y3))
    N, C, S = (int(v) for v in x3.shape)
    _check_vectors(C, ("mean", mean), ("scale", scale), ("shift", shift))
    size = N * C * S
    if size == 0:
        return
    out = _Outputs(y3)
    xd = _flat(_input(x3))
    if S >= PLANE_MIN:
        kernel = _plane_apply_kernel(t, np.dtype(x3.dtype).type, 0)
        _launch(kernel, min(N * C, MAX_BLOCKS), t, xd, xd, N * C, C, S, _input(mean),
                _input(scale), _input(shift), _input(mean), _flat(out.device[0]))
    else:
        kernel = _forward_apply_kernel(np.dtype(x3.dtype).type)
        _launch(kernel, _grid(size, t), t, xd, C, S, _input(mean), _input(scale), _input(shift),
                _flat(out.device[0]))
    out.copy_back()


def bn_backward_reduce(dy3, x3, mean, sum_dy, sum_dy_xmu, threads=None):
    """Per-channel sum_dy[c] = sum dy and sum_dy_xmu[c] = sum dy * (x - mean[c]).

    Accumulated in float64. These are the two reductions of the BatchNorm
    backward pass (Ioffe & Szegedy 2015): dbeta = sum dy,
    dgamma = invstd * sum dy*(x - mean).
    """
    t = _threads(threads)
    dy3, x3, mean, sum_dy, sum_dy_xmu = map(_as_array, (dy3, x3, mean, sum_dy, sum_dy_xmu))
    _check_big(x3, ("dy3", dy3))
    N, C, S = (int(v) for v in x3.shape)
    _check_vectors(C, ("mean", mean), ("sum_dy", sum_dy), ("sum_dy_xmu", sum_dy_xmu))
    if C == 0:
        return
    out = _Outputs(sum_dy, sum_dy_xmu)
    xd, dyd = _flat(_input(x3)), _flat(_input(dy3))
    if S >= PLANE_MIN and t % 32 == 0:
        part, P = _plane_partials(xd, dyd, N, C, S, _input(mean), t, 1)
        _launch(_sums_finish_kernel, _grid(C, t), t, C, P, part, *out.device)
    else:
        _launch(_backward_reduce_kernel(t), C, t, dyd, xd, N, C, S, _input(mean), *out.device)
    out.copy_back()


def bn_backward_apply(dy3, x3, mean, mean_dy, k, g, dx3, threads=None):
    """dx3 = (dy3 - mean_dy[c] - (x3 - mean[c]) * k[c]) * g[c], in x3's dtype.

    Training (Ioffe & Szegedy 2015): mean_dy = sum_dy/m,
    k = sum_dy_xmu/m * invstd^2, g = gamma * invstd, which is
    dx = gamma*invstd/m * (m*dy - sum(dy) - xhat*sum(dy*xhat)).
    Eval (fixed statistics): mean_dy = 0, k = 0.
    """
    t = _threads(threads)
    dy3, x3, mean, mean_dy, k, g, dx3 = map(_as_array, (dy3, x3, mean, mean_dy, k, g, dx3))
    _check_big(x3, ("dy3", dy3), ("dx3", dx3))
    N, C, S = (int(v) for v in x3.shape)
    _check_vectors(C, ("mean", mean), ("mean_dy", mean_dy), ("k", k), ("g", g))
    size = N * C * S
    if size == 0:
        return
    out = _Outputs(dx3)
    xd, dyd = _flat(_input(x3)), _flat(_input(dy3))
    if S >= PLANE_MIN:
        kernel = _plane_apply_kernel(t, np.dtype(x3.dtype).type, 1)
        _launch(kernel, min(N * C, MAX_BLOCKS), t, xd, dyd, N * C, C, S, _input(mean),
                _input(mean_dy), _input(k), _input(g), _flat(out.device[0]))
    else:
        kernel = _backward_apply_kernel(np.dtype(x3.dtype).type)
        _launch(kernel, _grid(size, t), t, dyd, xd, C, S, _input(mean), _input(mean_dy),
                _input(k), _input(g), _flat(out.device[0]))
    out.copy_back()
