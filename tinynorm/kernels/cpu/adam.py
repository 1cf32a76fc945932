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


CHUNK = 8
"""Parameters per call of the multi-tensor kernel: its arguments are tuples of this many flat
arrays (padded with empty ones), so that one compiled signature per dtype serves every model."""


@njit
def _adam_update_l2(p, g, m, v, b1, b2, c1, c2, step_size, bias2_sqrt, eps, wd):
    for i in range(p.size):
        gi = g[i] + wd * p[i]
        mi = b1 * m[i] + c1 * gi
        vi = b2 * v[i] + c2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (np.sqrt(vi) / bias2_sqrt + eps)


@njit
def _adam_update_many(ps, gs, ms, vs, count, first, hyper, l2, decoupled):
    b1, b2, c1, c2, eps, wd, decay = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4], hyper[5], hyper[6]
    for k in range(count):
        p = ps[k]
        step_size, bias2_sqrt = hyper[7 + 2 * (first + k)], hyper[8 + 2 * (first + k)]
        if decoupled:
            for i in range(p.size):
                p[i] *= decay
        if l2:
            _adam_update_l2(p, gs[k], ms[k], vs[k], b1, b2, c1, c2, step_size, bias2_sqrt, eps, wd)
        else:
            _adam_update(p, gs[k], ms[k], vs[k], b1, b2, c1, c2, step_size, bias2_sqrt, eps)


def _flat(a):
    return a if a.ndim == 1 else a.reshape(-1)


def adam_update_many(ps, gs, ms, vs, steps, b1, b2, eps, weight_decay=0.0, decoupled=False, lr=0.0):
    """:func:`adam_update` of several parameters, one launch per :data:`CHUNK` of them.

    ``ps``, ``ms``, ``vs`` are C-contiguous arrays of one dtype, ``gs`` their gradients and
    ``steps`` the flat ``step_size, bias2_sqrt`` pairs, one pair per parameter.
    ``weight_decay`` goes into the gradient as ``g + weight_decay * p`` (Adam's L2), or with
    ``decoupled`` scales the parameter by ``1 - lr * weight_decay`` first (AdamW).
    """
    if not ps:
        return
    dtype = ps[0].dtype
    hyper = np.array([b1, b2, 1 - b1, 1 - b2, eps, weight_decay, 1 - lr * weight_decay, *steps],
                     dtype=dtype)
    grads = [_flat(g) if type(g) is np.ndarray and g.dtype == dtype and g.flags.c_contiguous
             else np.ascontiguousarray(g, dtype=dtype).reshape(-1) for g in gs]
    l2, decoupled = bool(weight_decay) and not decoupled, bool(weight_decay) and decoupled
    pad = [_EMPTY[dtype.char]] * CHUNK
    for lo in range(0, len(ps), CHUNK):
        hi = min(lo + CHUNK, len(ps))
        p, m, v = (tuple([_flat(a) for a in arrays[lo:hi]] + pad[:CHUNK - hi + lo])
                   for arrays in (ps, ms, vs))
        g = tuple(grads[lo:hi] + pad[:CHUNK - hi + lo])
        _adam_update_many(p, g, m, v, hi - lo, lo, hyper, l2, decoupled)


_EMPTY = {np.dtype(t).char: np.empty(0, t) for t in (np.float32, np.float64)}
