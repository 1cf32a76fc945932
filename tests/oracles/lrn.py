"""LRN: the float64 channel-loop oracle (docs/norms.md#local-response-normalization), tolerances, a kernel pass.

The oracle loops over channels and windows and is vectorized over n and s only.
"""
import numpy as np


def oracle(x, size, alpha, beta, k, dy=None):
    """b (and da when dy is given) by the definitions, channel by channel, window by window."""
    x = np.asarray(x, np.float64)
    shape = x.shape
    a = x.reshape(shape[0], shape[1], -1)
    C = a.shape[1]
    lo, hi = size // 2, (size - 1) // 2
    d = np.empty_like(a)
    for c in range(C):
        total = np.zeros_like(a[:, 0])
        for cc in range(c - lo, c + hi + 1):
            if 0 <= cc < C:
                total = total + a[:, cc] ** 2
        d[:, c] = k + alpha / size * total
    b = a * d ** -beta
    if dy is None:
        return b.reshape(shape)
    g = np.asarray(dy, np.float64).reshape(a.shape)
    da = g * d ** -beta
    for c in range(C):
        t = g[:, c] * a[:, c] * d[:, c] ** (-beta - 1)
        for j in range(c - lo, c + hi + 1):
            if 0 <= j < C:
                da[:, j] = da[:, j] - 2 * alpha * beta / size * a[:, j] * t
    return b.reshape(shape), da.reshape(shape)


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)


def run_kernels(K, x3, size, alpha, beta, k, dy3, save=False, **kw):
    y3, dx3 = np.empty_like(x3), np.empty_like(x3)
    sc = np.empty_like(x3) if save else None
    K.lrn_forward(x3, size, alpha, beta, k, y3, sc, **kw)
    K.lrn_backward(dy3, x3, size, alpha, beta, k, sc, dx3, **kw)
    return y3, dx3
