"""Batch normalization kernels for CUDA (numba.cuda), mirroring kernels/cpu/batch_norm.py.

Same four functions, arguments and meaning as tinynorm.kernels.cpu.batch_norm
(the math is in tinynorm/ops/batch_norm.py and docs/norms.md), plus a keyword
``threads`` (threads per block, a power of two up to 1024; None means
DEFAULT_THREADS). x is viewed as x3 (N, C, S); every statistic is per
channel c, strided across the N rows (the "cols" traversal):

    bn_stats            local (count, mean, M2) per channel
    bn_forward_apply    y  = (x - mean) * scale + shift
    bn_backward_reduce  local (sum dy, sum dy*(x - mean)) per channel
    bn_backward_apply   dx = (dy - mean_dy - (x - mean) * k) * g

Reductions, S < PLANE_MIN: one block per channel; each thread walks the
channel's N*S values with a stride of the block size in float64 registers
(Welford's update for the statistics), and the block merges the threads'
partials in shared memory (reduce.block_chan_merge, reduce.block_sum2).
S >= PLANE_MIN: a channel's N planes are split over P blocks whose float64
partials (shifted sums for the statistics) a finish kernel adds in order.
Elementwise kernels compute in x's dtype, the float64 per-channel
coefficients cast once per element (grid-stride, channel = (i // S) % C) or
once per plane (one plane per block step).
"""
import functools

import numpy as np
from numba import cuda, float64

from .host import (launch as _launch, Outputs as _Outputs, as_array as _as_array,
                   check_input as _check_input, check_vectors as _check_vectors,
                   device_input as _input, flat as _flat, grid as _grid, per_dtype as _per_dtype,
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


@_per_dtype
def _forward_apply_kernel(cast):
    @cuda.jit
    def kernel(x, C, S, mean, scale, shift, y):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            c = (i // S) % C
            y[i] = (x[i] - cast(mean[c])) * cast(scale[c]) + cast(shift[c])

    return kernel


@_per_dtype
def _backward_apply_kernel(cast):
    @cuda.jit
    def kernel(dy, x, C, S, mean, mean_dy, k, g, dx):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
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

    # The x-only and the (x, dy) loads are written out four at a time on purpose: four loads in
    # flight per thread (group_norm's kernels unroll the same way for the same reason).

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


@cuda.jit(device=True)
def _part_sums(part, C, P, c):
    """Channel c's two sums over its P partials of the (2, C, P) array ``part``, in order of p."""
    a = 0.0
    b = 0.0
    for p in range(P):
        a += part[c * P + p]
        b += part[C * P + c * P + p]
    return a, b


@cuda.jit
def _stats_finish_kernel(x, N, C, S, P, part, count, mean, m2):
    """count = N*S, mean = shift + S1/count, M2 = S2 - S1^2/count from the (2, C, P) partials."""
    for c in range(cuda.grid(1), C, cuda.gridsize(1)):
        s1, s2 = _part_sums(part, C, P, c)
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
        a, b = _part_sums(part, C, P, c)
        sum_a[c] = a
        sum_b[c] = b


@_per_dtype
def _plane_apply_kernel(cast, threads, backward):
    """One plane (n, c) per block step; per-channel coefficients are loaded once per plane.

    Forward: y = (x - mean) * scale + shift. Backward:
    dx = (dy - mean_dy - ((x - head) - tail) * k) * g with the float64 mean as head + tail.
    Loads and stores are written out four at a time on purpose (four loads in flight).
    """
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


def bn_stats(x3, count, mean, m2, threads=None):
    """Per-channel count, mean and M2 = sum (x - mean)^2 of x3 (N, C, S).

    count[c] = N*S, mean[c] and m2[c] = sum_{n,s} (x[n,c,s] - mean[c])^2, all float64. An empty
    channel gives (0, 0, 0), which Chan's merge treats as absent.
    """
    t = _threads(threads)
    x3, count, mean, m2 = map(_as_array, (x3, count, mean, m2))
    N, C, S = _check_input("x3", x3, "N, C, S")
    _check_vectors((C,), ("count", count), ("mean", mean), ("m2", m2))
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
    """y3 = (x3 - mean[c]) * scale[c] + shift[c], computed in x3's dtype."""
    t = _threads(threads)
    x3, mean, scale, shift, y3 = map(_as_array, (x3, mean, scale, shift, y3))
    N, C, S = _check_input("x3", x3, "N, C, S", ("y3", y3))
    _check_vectors((C,), ("mean", mean), ("scale", scale), ("shift", shift))
    size = N * C * S
    if size == 0:
        return
    out = _Outputs(y3)
    xd = _flat(_input(x3))
    if S >= PLANE_MIN:
        kernel = _plane_apply_kernel(np.dtype(x3.dtype).type, t, 0)
        _launch(kernel, min(N * C, MAX_BLOCKS), t, xd, xd, N * C, C, S, _input(mean),
                _input(scale), _input(shift), _input(mean), _flat(out.device[0]))
    else:
        kernel = _forward_apply_kernel(np.dtype(x3.dtype).type)
        _launch(kernel, _grid(size, t), t, xd, C, S, _input(mean), _input(scale), _input(shift),
                _flat(out.device[0]))
    out.copy_back()


def bn_backward_reduce(dy3, x3, mean, sum_dy, sum_dy_xmu, threads=None):
    """Per-channel sum_dy[c] = sum dy and sum_dy_xmu[c] = sum dy * (x - mean[c]), in float64."""
    t = _threads(threads)
    dy3, x3, mean, sum_dy, sum_dy_xmu = map(_as_array, (dy3, x3, mean, sum_dy, sum_dy_xmu))
    N, C, S = _check_input("x3", x3, "N, C, S", ("dy3", dy3))
    _check_vectors((C,), ("mean", mean), ("sum_dy", sum_dy), ("sum_dy_xmu", sum_dy_xmu))
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
    """dx3 = (dy3 - mean_dy[c] - (x3 - mean[c]) * k[c]) * g[c], in x3's dtype, the float64 mean
    subtracted as head + tail."""
    t = _threads(threads)
    dy3, x3, mean, mean_dy, k, g, dx3 = map(_as_array, (dy3, x3, mean, mean_dy, k, g, dx3))
    N, C, S = _check_input("x3", x3, "N, C, S", ("dy3", dy3), ("dx3", dx3))
    _check_vectors((C,), ("mean", mean), ("mean_dy", mean_dy), ("k", k), ("g", g))
    size = N * C * S
    if size == 0:
        return
    out = _Outputs(dx3)
    xd, dyd = _flat(_input(x3)), _flat(_input(dy3))
    if S >= PLANE_MIN:
        kernel = _plane_apply_kernel(np.dtype(x3.dtype).type, t, 1)
        _launch(kernel, min(N * C, MAX_BLOCKS), t, xd, dyd, N * C, C, S, _input(mean),
                _input(mean_dy), _input(k), _input(g), _flat(out.device[0]))
    else:
        kernel = _backward_apply_kernel(np.dtype(x3.dtype).type)
        _launch(kernel, _grid(size, t), t, dyd, xd, C, S, _input(mean), _input(mean_dy),
                _input(k), _input(g), _flat(out.device[0]))
    out.copy_back()
