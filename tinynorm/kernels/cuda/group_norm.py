"""Group normalization kernels for CUDA (numba.cuda), mirroring kernels/cpu/group_norm.py.

Same functions, arguments and meaning as tinynorm.kernels.cpu.group_norm (the
math is in tinynorm/ops/group_norm.py and docs/norms.md), plus a keyword
``threads`` (threads per block, a power of two up to 1024; None means
DEFAULT_THREADS). x is viewed as x4 (N, G, K, S): row r = (n, g) holds
M = K*S values with its own statistics, slot (g, k) its own gamma and beta.

Statistics and dx take the "rows" traversal: one block per row (blocks
stride over rows). The statistics are float64 sums of x - x[r, 0] and its
square (the shifted-data algorithm: with a shift drawn from the row,
M2 = S2 - S1^2/M loses nothing in float64 to the cancellation that unshifted
sums suffer), folded by the block (warp shuffles on a GPU, a shared-memory
tree under the simulator). Each thread keeps four loads in flight. The
second pass over the row, writing y, finds it in L2. Three layouts of the
slots along the row:

    ELEMENT_SLOTS  S == 1    one slot per element (LayerNorm): no index arithmetic
    PLANE_SLOTS    S >= 32   per-slot planes of S values: gamma, beta loaded once per plane
    DIVIDED_SLOTS  otherwise slot = j // S per element

The backward's per-slot sums (dgamma, dbeta) come out of the dx kernel's
per-plane folds in the plane layout; with one slot per element they take the
"cols" traversal (cols.column_sums). Results repeat bitwise from run to run.
"""
import functools
import math

import numpy as np
from numba import cuda, float64

from ...backend import is_cupy_array
from .cols import column_sums
from .host import (launch as _launch, Outputs as _Outputs, as_array as _as_array,
                   check_input as _check_input, check_vectors as _check_vectors,
                   device_input as _input, filled as _filled, flat as _flat, per_dtype as _per_dtype,
                   threads_or_default as _threads, workspace as _workspace)
from .reduce import sum2_for

MAX_BLOCKS = 65535
ELEMENT_SLOTS, PLANE_SLOTS, DIVIDED_SLOTS = 0, 1, 2


def _layout(S):
    return ELEMENT_SLOTS if S == 1 else PLANE_SLOTS if S >= 32 else DIVIDED_SLOTS


# The kernels below write their loads out four at a time in each layout on purpose: four loads
# in flight per thread; the layouts differ only in how a value finds its slot.


@_per_dtype
def _forward_kernel(cast, threads):
    sum2 = sum2_for(threads)

    @cuda.jit
    def kernel(x, R, M, G, K, S, layout, w, b, eps, y, mean, rstd):
        sa = cuda.shared.array(threads, float64)
        sb = cuda.shared.array(threads, float64)
        tid = cuda.threadIdx.x
        for r in range(cuda.blockIdx.x, R, cuda.gridDim.x):
            base = r * M
            shift = float64(x[base])
            s1 = 0.0
            s2 = 0.0
            j = tid
            while j + 3 * threads < M:
                d0 = float64(x[base + j]) - shift
                d1 = float64(x[base + j + threads]) - shift
                d2 = float64(x[base + j + 2 * threads]) - shift
                d3 = float64(x[base + j + 3 * threads]) - shift
                s1 += (d0 + d1) + (d2 + d3)
                s2 += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
                j += 4 * threads
            while j < M:
                d0 = float64(x[base + j]) - shift
                s1 += d0
                s2 += d0 * d0
                j += threads
            s1, s2 = sum2(sa, sb, s1, s2, tid, threads)
            dm = s1 / M
            var = s2 / M - dm * dm
            if var < 0.0:
                var = 0.0
            mu = shift + dm
            rs = 1.0 / math.sqrt(var + eps)
            if tid == 0:
                mean[r] = mu
                rstd[r] = rs
            mt = cast(mu)
            off = (r % G) * K
            if layout == ELEMENT_SLOTS:
                j = tid
                while j + 3 * threads < M:
                    j1 = j + threads
                    j2 = j1 + threads
                    j3 = j2 + threads
                    x0 = x[base + j]
                    x1 = x[base + j1]
                    x2 = x[base + j2]
                    x3 = x[base + j3]
                    y[base + j] = (x0 - mt) * cast(rs * w[off + j]) + cast(b[off + j])
                    y[base + j1] = (x1 - mt) * cast(rs * w[off + j1]) + cast(b[off + j1])
                    y[base + j2] = (x2 - mt) * cast(rs * w[off + j2]) + cast(b[off + j2])
                    y[base + j3] = (x3 - mt) * cast(rs * w[off + j3]) + cast(b[off + j3])
                    j += 4 * threads
                while j < M:
                    y[base + j] = (x[base + j] - mt) * cast(rs * w[off + j]) + cast(b[off + j])
                    j += threads
            elif layout == PLANE_SLOTS:
                for kk in range(K):
                    a = cast(rs * w[off + kk])
                    c = cast(b[off + kk])
                    p = base + kk * S
                    s = tid
                    while s + 3 * threads < S:
                        x0 = x[p + s]
                        x1 = x[p + s + threads]
                        x2 = x[p + s + 2 * threads]
                        x3 = x[p + s + 3 * threads]
                        y[p + s] = (x0 - mt) * a + c
                        y[p + s + threads] = (x1 - mt) * a + c
                        y[p + s + 2 * threads] = (x2 - mt) * a + c
                        y[p + s + 3 * threads] = (x3 - mt) * a + c
                        s += 4 * threads
                    while s < S:
                        y[p + s] = (x[p + s] - mt) * a + c
                        s += threads
            else:
                for j in range(tid, M, threads):
                    k = off + j // S
                    y[base + j] = (x[base + j] - mt) * cast(rs * w[k]) + cast(b[k])

    return kernel


@_per_dtype
def _dx_kernel(cast, threads):
    sum2 = sum2_for(threads)

    @cuda.jit
    def kernel(dy, x, R, M, G, K, S, layout, w, mean, rstd, want_params, part_a, part_b, dx):
        sa = cuda.shared.array(threads, float64)
        sb = cuda.shared.array(threads, float64)
        tid = cuda.threadIdx.x
        for r in range(cuda.blockIdx.x, R, cuda.gridDim.x):
            base = r * M
            off = (r % G) * K
            mu = mean[r]
            a = 0.0
            b = 0.0
            if layout == PLANE_SLOTS:
                for kk in range(K):
                    p = base + kk * S
                    pa = 0.0
                    pb = 0.0
                    s = tid
                    while s + 3 * threads < S:
                        g0 = float64(dy[p + s])
                        g1 = float64(dy[p + s + threads])
                        g2 = float64(dy[p + s + 2 * threads])
                        g3 = float64(dy[p + s + 3 * threads])
                        pa += ((g0 * (x[p + s] - mu) + g1 * (x[p + s + threads] - mu))
                               + (g2 * (x[p + s + 2 * threads] - mu)
                                  + g3 * (x[p + s + 3 * threads] - mu)))
                        pb += (g0 + g1) + (g2 + g3)
                        s += 4 * threads
                    while s < S:
                        g0 = float64(dy[p + s])
                        pa += g0 * (x[p + s] - mu)
                        pb += g0
                        s += threads
                    pa, pb = sum2(sa, sb, pa, pb, tid, threads)
                    wk = w[off + kk]
                    a += wk * pa
                    b += wk * pb
                    if want_params and tid == 0:
                        part_a[r * K + kk] = pa
                        part_b[r * K + kk] = pb
            elif layout == ELEMENT_SLOTS:
                j = tid
                while j + 3 * threads < M:
                    j1 = j + threads
                    j2 = j1 + threads
                    j3 = j2 + threads
                    e0 = dy[base + j]
                    e1 = dy[base + j1]
                    e2 = dy[base + j2]
                    e3 = dy[base + j3]
                    x0 = x[base + j]
                    x1 = x[base + j1]
                    x2 = x[base + j2]
                    x3 = x[base + j3]
                    g0 = float64(e0) * w[off + j]
                    g1 = float64(e1) * w[off + j1]
                    g2 = float64(e2) * w[off + j2]
                    g3 = float64(e3) * w[off + j3]
                    a += (g0 * (x0 - mu) + g1 * (x1 - mu)) + (g2 * (x2 - mu) + g3 * (x3 - mu))
                    b += (g0 + g1) + (g2 + g3)
                    j += 4 * threads
                while j < M:
                    g0 = float64(dy[base + j]) * w[off + j]
                    a += g0 * (x[base + j] - mu)
                    b += g0
                    j += threads
                a, b = sum2(sa, sb, a, b, tid, threads)
            else:
                for j in range(tid, M, threads):
                    g0 = float64(dy[base + j]) * w[off + j // S]
                    a += g0 * (x[base + j] - mu)
                    b += g0
                a, b = sum2(sa, sb, a, b, tid, threads)
            rs = rstd[r]
            c2 = rs * rs * rs * a / M
            c0 = rs * b / M
            if layout == PLANE_SLOTS:
                for kk in range(K):
                    wr = w[off + kk] * rs
                    p = base + kk * S
                    s = tid
                    while s + 3 * threads < S:
                        i = p + s
                        e0 = dy[i]
                        e1 = dy[i + threads]
                        e2 = dy[i + 2 * threads]
                        e3 = dy[i + 3 * threads]
                        x0 = x[i]
                        x1 = x[i + threads]
                        x2 = x[i + 2 * threads]
                        x3 = x[i + 3 * threads]
                        dx[i] = cast(float64(e0) * wr - ((float64(x0) - mu) * c2 + c0))
                        dx[i + threads] = cast(float64(e1) * wr - ((float64(x1) - mu) * c2 + c0))
                        dx[i + 2 * threads] = cast(float64(e2) * wr - ((float64(x2) - mu) * c2 + c0))
                        dx[i + 3 * threads] = cast(float64(e3) * wr - ((float64(x3) - mu) * c2 + c0))
                        s += 4 * threads
                    while s < S:
                        i = p + s
                        dx[i] = cast(float64(dy[i]) * wr - ((float64(x[i]) - mu) * c2 + c0))
                        s += threads
            elif layout == ELEMENT_SLOTS:
                j = tid
                while j + 3 * threads < M:
                    i = base + j
                    e0 = dy[i]
                    e1 = dy[i + threads]
                    e2 = dy[i + 2 * threads]
                    e3 = dy[i + 3 * threads]
                    x0 = x[i]
                    x1 = x[i + threads]
                    x2 = x[i + 2 * threads]
                    x3 = x[i + 3 * threads]
                    k = off + j
                    dx[i] = cast(float64(e0) * (w[k] * rs) - ((float64(x0) - mu) * c2 + c0))
                    dx[i + threads] = cast(float64(e1) * (w[k + threads] * rs)
                                           - ((float64(x1) - mu) * c2 + c0))
                    dx[i + 2 * threads] = cast(float64(e2) * (w[k + 2 * threads] * rs)
                                               - ((float64(x2) - mu) * c2 + c0))
                    dx[i + 3 * threads] = cast(float64(e3) * (w[k + 3 * threads] * rs)
                                               - ((float64(x3) - mu) * c2 + c0))
                    j += 4 * threads
                while j < M:
                    i = base + j
                    dx[i] = cast(float64(dy[i]) * (w[off + j] * rs) - ((float64(x[i]) - mu) * c2 + c0))
                    j += threads
            else:
                for j in range(tid, M, threads):
                    k = off + j // S
                    i = base + j
                    dx[i] = cast(float64(dy[i]) * (w[k] * rs) - ((float64(x[i]) - mu) * c2 + c0))

    return kernel


@functools.lru_cache(maxsize=None)
def _plane_sums_kernel(threads):
    """Per-slot plane sums when dx is not wanted:
    part_a[r, k] = sum_s dy*(x - mean), part_b[r, k] = sum_s dy. One plane per block step, unlike
    batch_norm's plane partials (a channel's planes split over blocks), so the two stay apart."""
    sum2 = sum2_for(threads)

    @cuda.jit
    def kernel(dy, x, R, K, S, mean, part_a, part_b):
        sa = cuda.shared.array(threads, float64)
        sb = cuda.shared.array(threads, float64)
        tid = cuda.threadIdx.x
        for rk in range(cuda.blockIdx.x, R * K, cuda.gridDim.x):
            mu = mean[rk // K]
            p = rk * S
            pa = 0.0
            pb = 0.0
            for s in range(tid, S, threads):
                g = float64(dy[p + s])
                pa += g * (x[p + s] - mu)
                pb += g
            pa, pb = sum2(sa, sb, pa, pb, tid, threads)
            if tid == 0:
                part_a[rk] = pa
                part_b[rk] = pb

    return kernel


@cuda.jit
def _slot_finish_kernel(part_a, part_b, N, G, K, rstd, dweight, dbias):
    """dweight[g, k] = sum_n part_a[n, g, k]*rstd[n, g], dbias[g, k] = sum_n part_b[n, g, k]."""
    for gk in range(cuda.grid(1), G * K, cuda.gridsize(1)):
        g = gk // K
        a = 0.0
        b = 0.0
        for n in range(N):
            a += part_a[n * G * K + gk] * rstd[n * G + g]
            b += part_b[n * G * K + gk]
        dweight[gk] = a
        dbias[gk] = b


# ---------------------------------------------------------------------------
# host side


def _fill(a, value):
    """Set every element of an output (NumPy, CuPy or Numba device array; None is skipped)."""
    if a is None:
        return
    if isinstance(a, np.ndarray) or is_cupy_array(a):
        a[...] = value
    else:
        cuda.as_cuda_array(a).copy_to_device(np.full(a.shape, value))


def gn_forward(x4, weight, bias, eps, y4, mean, rstd, threads=None):
    """y4 = (x4 - mean[n, g]) * rstd[n, g] * weight[g, k] + bias[g, k]; writes mean and rstd.

    x4 (N, G, K, S) in float32 or float64; weight and bias float64 of shape
    (G*K,) or None (ones, zeros); mean and rstd float64 (N, G): the mean and
    1/sqrt(var + eps) of each row's K*S values, var the biased variance.
    """
    t = _threads(threads)
    x4, weight, bias, y4, mean, rstd = map(_as_array, (x4, weight, bias, y4, mean, rstd))
    N, G, K, S = _check_input("x4", x4, "N, G, K, S", ("y4", y4))
    _check_vectors((G * K,), ("weight", weight), ("bias", bias))
    _check_vectors((N, G), ("mean", mean), ("rstd", rstd))
    R, M = N * G, K * S
    if R == 0:
        return
    if M == 0:
        for a in (mean, rstd):
            _fill(a, np.nan)
        return
    out = _Outputs(y4, mean, rstd)
    xd = _input(x4)
    kernel = _forward_kernel(np.dtype(x4.dtype).type, t)
    _launch(kernel, min(R, MAX_BLOCKS), t, _flat(xd), R, M, G, K, S, _layout(S),
            _filled(weight, G * K, 1.0, xd), _filled(bias, G * K, 0.0, xd), float(eps),
            _flat(out.device[0]), _flat(out.device[1]), _flat(out.device[2]))
    out.copy_back()


def gn_backward(dy4, x4, weight, mean, rstd, dx4, dweight, dbias, threads=None):
    """dx4, dweight, dbias of gn_forward's y for upstream gradient dy4 (each output optional).

    Reductions accumulate in float64; dweight and dbias are float64 (G*K,).
    """
    t = _threads(threads)
    dy4, x4, weight, mean, rstd, dx4, dweight, dbias = map(
        _as_array, (dy4, x4, weight, mean, rstd, dx4, dweight, dbias))
    N, G, K, S = _check_input("x4", x4, "N, G, K, S", ("dy4", dy4), ("dx4", dx4))
    _check_vectors((G * K,), ("weight", weight), ("dweight", dweight), ("dbias", dbias))
    _check_vectors((N, G), ("mean", mean), ("rstd", rstd))
    R, M = N * G, K * S
    if R == 0 or M == 0:
        for a in (dweight, dbias):
            _fill(a, 0.0)
        return
    layout = _layout(S)
    d_x, d_dy, d_mean, d_rstd = (_flat(_input(a)) for a in (x4, dy4, mean, rstd))
    want_params = dweight is not None or dbias is not None
    params = _Outputs(*(_workspace(G * K, np.float64, d_x) if a is None else a
                        for a in (dweight, dbias))) if want_params else None
    part_a = part_b = d_mean
    planes = want_params and layout != ELEMENT_SLOTS
    if planes:
        part_a = _workspace(R * K, np.float64, d_x)
        part_b = _workspace(R * K, np.float64, d_x)
    fused = planes and layout == PLANE_SLOTS
    if dx4 is not None:
        out = _Outputs(dx4)
        kernel = _dx_kernel(np.dtype(x4.dtype).type, t)
        _launch(kernel, min(R, MAX_BLOCKS), t,
                d_dy, d_x, R, M, G, K, S, layout, _filled(weight, G * K, 1.0, d_x), d_mean, d_rstd,
                1 if fused else 0, part_a, part_b, _flat(out.device[0]))
        out.copy_back()
    if not want_params:
        return
    if layout == ELEMENT_SLOTS:
        column_sums(d_dy, d_x, N, G, K, d_mean, d_rstd, params.device[0], params.device[1], t)
    else:
        if dx4 is None or not fused:
            _launch(_plane_sums_kernel(t), min(R * K, MAX_BLOCKS), t, d_dy, d_x, R, K, S,
                    d_mean, part_a, part_b)
        _launch(_slot_finish_kernel, -(-(G * K) // t), t, part_a, part_b, N, G, K, d_rstd,
                *params.device)
    params.copy_back()
