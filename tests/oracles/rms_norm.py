"""RMSNorm: the float64 loop oracle (docs/norms.md#rmsnorm), tolerances, a kernel pass."""
import numpy as np


def oracle(x, k, weight, eps, dy=None):
    """y (and dx, dw when dy is given) of RMSNorm over the last k axes, row by row."""
    x = np.asarray(x, np.float64)
    D = int(np.prod(x.shape[x.ndim - k:]))
    x2 = x.reshape(-1, D)
    w = np.ones(D) if weight is None else np.asarray(weight, np.float64).reshape(D)
    y2, dx2, dw = np.empty_like(x2), np.empty_like(x2), np.zeros(D)
    g2 = None if dy is None else np.asarray(dy, np.float64).reshape(x2.shape)
    for r in range(x2.shape[0]):
        ms = sum(v * v for v in x2[r]) / D
        inv = 1.0 / np.sqrt(ms + eps)
        for j in range(D):
            y2[r, j] = x2[r, j] * inv * w[j]
        if g2 is not None:
            s = sum(g2[r, j] * w[j] * x2[r, j] for j in range(D))
            for j in range(D):
                dx2[r, j] = inv * (w[j] * g2[r, j] - x2[r, j] * inv * inv * s / D)
                dw[j] += g2[r, j] * x2[r, j] * inv
    if dy is None:
        return y2.reshape(x.shape)
    return y2.reshape(x.shape), dx2.reshape(x.shape), dw.reshape(np.shape(weight) or (D,))


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def run_kernels(K, x2, w, dy2, eps=1e-5, **kw):
    R, D = x2.shape
    y2, dx2, rstd, dw = np.empty_like(x2), np.empty_like(x2), np.empty(R), np.empty(D)
    K.rms_forward(x2, w, eps, y2, rstd, **kw)
    K.rms_backward(dy2, x2, w, rstd, dx2, None if w is None else dw, **kw)
    return y2, rstd, dx2, (None if w is None else dw)
