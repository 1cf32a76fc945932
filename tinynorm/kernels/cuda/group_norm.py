"""Group normalization kernels for CUDA (numba.cuda), mirroring kernels/cpu/group_norm.py.

Group Normalization (Wu & He, 2018) over x viewed as x4 (N, G, K, S): row
r = (n, g) holds M = K*S values with its own statistics, slot (g, k) its own
gamma and beta (GroupNorm: K = C/G; InstanceNorm: G = C, K = 1; LayerNorm:
G = 1, K = M, S = 1):

    mean_r = 1/M sum_m x[r, m]      rstd_r = 1/sqrt(1/M sum_m (x[r, m] - mean_r)^2 + eps)
    y      = (x - mean_r) * rstd_r * gamma[g, k] + beta[g, k]
    A_r    = sum_m dy*gamma*(x - mean_r),   B_r = sum_m dy*gamma
    dx     = dy*gamma*rstd - ((x - mean)*rstd^3*A/M + rstd*B/M)
    dgamma = sum_{n,s} dy*(x - mean)*rstd,  dbeta = sum_{n,s} dy

Same functions, arguments and meaning as tinynorm.kernels.cpu.group_norm,
plus a keyword `threads` (threads per block, a power of two up to 1024;
None means DEFAULT_THREADS):

    gn_forward    one block per row: Welford per thread, Chan's merge of the
                  threads' (count, mean, M2) in shared memory, then y
    gn_backward   one block per row: A, B by a shared-memory tree, then dx;
                  one block per slot (g, k): dgamma, dbeta over (n, s)

Partials are float64 and combined by trees of cuda.syncthreads() steps
(Chan, Golub & LeVeque 1979 for the statistics); no warp shuffles, so every
kernel runs under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1). Elementwise
outputs are computed in x's dtype from float64 coefficients cast once.

Arrays may be NumPy arrays (copied to the device and, for outputs, back) or
device arrays (numba device arrays, or anything with
__cuda_array_interface__ such as CuPy arrays), which are used in place.
"""
import functools

import numpy as np
from numba import cuda, float64, from_dtype

from .host import (Outputs as _Outputs, as_array as _as_array, check as _check,
                   device_input as _input, flat as _flat, threads_or_default as _threads)
from .reduce import block_chan_merge, block_sum2


MAX_BLOCKS = 65535


@functools.lru_cache(maxsize=None)
def _forward_kernel(threads, dtype):
    cast = from_dtype(np.dtype(dtype))

    @cuda.jit
    def kernel(x, R, M, G, K, S, w, b, eps, y, mean, rstd):
        sn = cuda.shared.array(threads, float64)
        sm = cuda.shared.array(threads, float64)
        sq = cuda.shared.array(threads, float64)
        tid = cuda.threadIdx.x
        for r in range(cuda.blockIdx.x, R, cuda.gridDim.x):
            base = r * M
            n_t = 0.0
            m_t = 0.0
            q_t = 0.0
            for j in range(tid, M, threads):
                v = float64(x[base + j])
                n_t += 1.0
                d = v - m_t
                m_t += d / n_t
                q_t += d * (v - m_t)
            _, mu, q = block_chan_merge(sn, sm, sq, n_t, m_t, q_t, tid, threads)
            rs = 1.0 / (q / M + eps) ** 0.5
            if tid == 0:
                mean[r] = mu
                rstd[r] = rs
            mt = cast(mu)
            off = (r % G) * K
            for j in range(tid, M, threads):
                k = off + j // S
                y[base + j] = (x[base + j] - mt) * cast(rs * w[k]) + cast(b[k])

    return kernel


@functools.lru_cache(maxsize=None)
def _dx_kernel(threads, dtype):
    cast = from_dtype(np.dtype(dtype))

    @cuda.jit
    def kernel(dy, x, R, M, G, K, S, w, mean, rstd, dx):
        sa = cuda.shared.array(threads, float64)
        sb = cuda.shared.array(threads, float64)
        tid = cuda.threadIdx.x
        for r in range(cuda.blockIdx.x, R, cuda.gridDim.x):
            base = r * M
            off = (r % G) * K
            mu = mean[r]
            a = 0.0
            b = 0.0
            for j in range(tid, M, threads):
                g = float64(dy[base + j]) * w[off + j // S]
                a += g * (x[base + j] - mu)
                b += g
            a, b = block_sum2(sa, sb, a, b, tid, threads)
            rs = rstd[r]
            c2 = rs * rs * rs * a / M
            c0 = rs * b / M
            for j in range(tid, M, threads):
                i = base + j
                dx[i] = cast(float64(dy[i]) * (w[off + j // S] * rs)
                             - ((float64(x[i]) - mu) * c2 + c0))

    return kernel


@functools.lru_cache(maxsize=None)
def _params_kernel(threads):
    @cuda.jit
    def kernel(dy, x, N, G, K, S, mean, rstd, dweight, dbias):
        sw = cuda.shared.array(threads, float64)
        sb = cuda.shared.array(threads, float64)
        tid = cuda.threadIdx.x
        M = K * S
        for gk in range(cuda.blockIdx.x, G * K, cuda.gridDim.x):
            g = gk // K
            k = gk - g * K
            a = 0.0
            b = 0.0
            for j in range(tid, N * S, threads):
                n = j // S
                r = n * G + g
                i = r * M + k * S + (j - n * S)
                d = float64(dy[i])
                a += d * (x[i] - mean[r]) * rstd[r]
                b += d
            a, b = block_sum2(sw, sb, a, b, tid, threads)
            if tid == 0:
                dweight[gk] = a
                dbias[gk] = b

    return kernel


# ---------------------------------------------------------------------------
# host side


def _check_big(x4, *others):
    assert len(x4.shape) == 4, f"x4 must be 4-D (N, G, K, S), got shape {x4.shape}"
    assert np.dtype(x4.dtype) in (np.float32, np.float64), f"unsupported dtype {x4.dtype}"
    for name, a in others:
        _check(name, a, x4.shape, x4.dtype)


def _filled(a, size, value):
    return _input(np.full(size, value)) if a is None else _input(a)


def gn_forward(x4, weight, bias, eps, y4, mean, rstd, threads=None):
    """y4 = (x4 - mean[n, g]) * rstd[n, g] * weight[g, k] + bias[g, k]; writes mean and rstd.

    x4 (N, G, K, S) in float32 or float64; weight and bias float64 of shape
    (G*K,) or None (ones, zeros); mean and rstd float64 (N, G): the mean and
    1/sqrt(var + eps) of each row's K*S values, var the biased variance
    (Wu & He 2018, eq. 1-3).
    """
    t = _threads(threads)
    x4, weight, bias, y4, mean, rstd = map(_as_array, (x4, weight, bias, y4, mean, rstd))
    _check_big(x4, ("y4", y4))
    N, G, K, S = (int(v) for v in x4.shape)
    for name, a in (("weight", weight), ("bias", bias)):
        _check(name, a, (G * K,), np.float64)
    for name, a in (("mean", mean), ("rstd", rstd)):
        _check(name, a, (N, G), np.float64)
    R, M = N * G, K * S
    if R == 0:
        return
    if M == 0:
        for a in (mean, rstd):
            if isinstance(a, np.ndarray):
                a[...] = np.nan
            else:
                cuda.as_cuda_array(a).copy_to_device(np.full((N, G), np.nan))
        return
    out = _Outputs(y4, mean, rstd)
    kernel = _forward_kernel(t, np.dtype(x4.dtype).type)
    kernel[min(R, MAX_BLOCKS), t](_flat(_input(x4)), R, M, G, K, S,
                                  _filled(weight, G * K, 1.0), _filled(bias, G * K, 0.0),
                                  float(eps), _flat(out.device[0]), _flat(out.device[1]),
                                  _flat(out.device[2]))
    out.copy_back()


def gn_backward(dy4, x4, weight, mean, rstd, dx4, dweight, dbias, threads=None):
    """dx4, dweight, dbias of gn_forward's y for upstream gradient dy4 (each output optional).

    With A = sum dy*gamma*(x - mean) and B = sum dy*gamma over each row of
    M = K*S values: dx = dy*gamma*rstd - ((x - mean)*rstd^3*A/M + rstd*B/M);
    dweight[g, k] = sum_{n, s} dy*(x - mean)*rstd, dbias[g, k] = sum_{n, s} dy.
    Reductions accumulate in float64; dweight and dbias are float64 (G*K,).
    """
    t = _threads(threads)
    dy4, x4, weight, mean, rstd, dx4, dweight, dbias = map(
        _as_array, (dy4, x4, weight, mean, rstd, dx4, dweight, dbias))
    _check_big(x4, ("dy4", dy4), ("dx4", dx4))
    N, G, K, S = (int(v) for v in x4.shape)
    for name, a in (("weight", weight), ("dweight", dweight), ("dbias", dbias)):
        _check(name, a, (G * K,), np.float64)
    for name, a in (("mean", mean), ("rstd", rstd)):
        _check(name, a, (N, G), np.float64)
    R, M = N * G, K * S
    d_x, d_dy, d_mean, d_rstd = (_flat(_input(a)) for a in (x4, dy4, mean, rstd))
    if dx4 is not None and R and M:
        out = _Outputs(dx4)
        _dx_kernel(t, np.dtype(x4.dtype).type)[min(R, MAX_BLOCKS), t](
            d_dy, d_x, R, M, G, K, S, _filled(weight, G * K, 1.0), d_mean, d_rstd,
            _flat(out.device[0]))
        out.copy_back()
    if (dweight is not None or dbias is not None) and G * K:
        out = _Outputs(*(np.empty(G * K) if a is None else a for a in (dweight, dbias)))
        _params_kernel(t)[min(G * K, MAX_BLOCKS), t](d_dy, d_x, N, G, K, S, d_mean, d_rstd,
                                                   *out.device)
        out.copy_back()
