"""FRN + TLU: the float64 loop oracle (docs/norms.md#frn--tlu), tolerances, parameter draws, a kernel pass."""
import numpy as np


def oracle(x, gamma, beta, eps, tau=None):
    """z = max(gamma*x/sqrt(mean_s x^2 + eps_c) + beta, tau) plane by plane; eps per channel."""
    x = np.asarray(x, np.float64)
    N, C = x.shape[:2]
    eps = np.broadcast_to(np.asarray(eps, np.float64), (C,))
    z = np.empty_like(x)
    for n in range(N):
        for c in range(C):
            plane = x[n, c].ravel()
            nu2 = sum(v * v for v in plane) / plane.size
            y = gamma[c] * x[n, c] / np.sqrt(nu2 + eps[c]) + beta[c]
            z[n, c] = y if tau is None else np.maximum(y, tau[c])
    return z


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def params(rng, C, dtype=np.float64):
    return (rng.uniform(0.5, 2, C).astype(dtype), rng.standard_normal(C).astype(dtype),
            (rng.standard_normal(C) * 0.5).astype(dtype))


def run_kernels(K, x3, gamma, beta, tau, eps, dz3, **kw):
    N, C, _ = x3.shape
    z3, dx3, rstd = np.empty_like(x3), np.empty_like(x3), np.empty((N, C))
    sums = [np.empty((N, C)) for _ in range(3)]
    K.frn_forward(x3, gamma, beta, tau, eps, z3, rstd, **kw)
    K.frn_backward(dz3, x3, gamma, beta, tau, rstd, dx3, *sums, **kw)
    return [z3, rstd, dx3] + sums
