"""The Adam / AdamW parameter update as one fused pass (Kingma & Ba 2015).

    m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
    p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)

NumPy needs a dozen calls and temporaries per parameter for this; a training
step of a small model spends more time in them than in the arithmetic.
Weight decay is applied by the caller (L2 into g for Adam, decoupled for AdamW).
"""
import numpy as np

from .jit import njit


@njit
def _adam_update(p, g, m, v, b1, b2, c1, c2, step_size, bias2_sqrt, eps):
    for i in range(p.size):
        gi = g[i]
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (np.sqrt(vi) / bias2_sqrt + eps)


def adam_update(p, g, m, v, b1, b2, step_size, bias2_sqrt, eps):
    """Update ``p``, ``m``, ``v`` (contiguous, one dtype) in place from gradient ``g``.

    Every scalar is cast to the parameters' dtype first (``1 - b1`` written in the
    loop would turn a float32 update into float64 arithmetic).
    """
    dt = p.dtype.type
    _adam_update(p.reshape(-1), np.ascontiguousarray(g, dtype=p.dtype).reshape(-1), m.reshape(-1),
                 v.reshape(-1), dt(b1), dt(b2), dt(1 - b1), dt(1 - b2), dt(step_size), dt(bias2_sqrt),
                 dt(eps))
