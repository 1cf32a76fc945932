"""Cross-entropy of logits (N, C) against class indices, forward and backward, one pass each.

The formulas are those of :mod:`tinynorm.ops.loss` (log-softmax with the row maximum
subtracted, class weights, ``ignore_index``, label smoothing); NumPy needs some twenty calls
and temporaries for them, which dominate at the sizes a classifier's head has. Sums over
the batch and over a row's exponentials are accumulated in float64.
"""
import numpy as np

from .jit import njit

REDUCTIONS = {"none": 0, "sum": 1, "mean": 2}
_UNIT = {}


def _ones(c, dtype):
    """The class weights of an unweighted loss (read-only, kept per class count and dtype)."""
    w = _UNIT.get((c, dtype))
    if w is None:
        w = _UNIT[(c, dtype)] = np.ones(c, dtype)
        w.flags.writeable = False
    return w


@njit
def _forward(x, target, weight, ignore_index, eps, reduction, logp, t, per, coef, smooth):
    n, c = x.shape
    one = x.dtype.type(1)
    keep, mix = one - x.dtype.type(eps), x.dtype.type(eps / c)
    per_sum = 0.0
    w_sum = 0.0
    for i in range(n):
        m = x[i, 0]
        for j in range(1, c):
            v = x[i, j]
            if v > m or v != v:
                m = v
        s = 0.0
        for j in range(c):
            s += np.exp(np.float64(x[i, j] - m))
        lse = x.dtype.type(np.log(s))
        smoothed = 0.0
        for j in range(c):
            lp = (x[i, j] - m) - lse
            logp[i, j] = lp
            smoothed += lp * weight[j]
        valid = target[i] != ignore_index
        ti = target[i] if valid else 0
        if ti < 0 or ti >= c:
            return i, 0.0, 0.0
        t[i] = ti
        vf = one if valid else x.dtype.type(0)
        w = weight[ti] * vf
        if eps:
            per[i] = -keep * w * logp[i, ti] - mix * vf * x.dtype.type(smoothed)
        else:
            per[i] = -w * logp[i, ti]
        per_sum += per[i]
        w_sum += w
    scale = 1.0
    if reduction == 2:
        scale = 1.0 / w_sum if w_sum != 0 else np.nan
    for i in range(n):
        valid = target[i] != ignore_index
        coef[i] = (1 - eps) * weight[t[i]] * scale if valid else 0.0
        smooth[i] = eps / c * scale if valid else 0.0
    return -1, per_sum, scale


def forward(logits, target, weight, ignore_index, eps, reduction):
    """``(loss, logp, t, coef, smooth)``: the reduced loss (or per-sample losses) as a
    ``logits.dtype`` array, and what :func:`backward` needs: the log-probabilities, the targets
    with ignored ones set to 0, and the per-sample factors of the two gradient terms."""
    n, c = logits.shape
    dtype = logits.dtype
    w = _ones(c, dtype) if weight is None else np.ascontiguousarray(weight, dtype=dtype)
    logp = np.empty((n, c), dtype)
    t = np.empty(n, np.int64)
    per, coef, smooth = np.empty(n, dtype), np.empty(n, dtype), np.empty(n, dtype)
    bad, per_sum, scale = _forward(logits, target.astype(np.int64, copy=False), w, ignore_index,
                                   float(eps), REDUCTIONS[reduction], logp, t, per, coef, smooth)
    if bad >= 0:
        raise IndexError(f"cross_entropy: target {target[bad]} of sample {bad} is out of bounds "
                         f"for {c} classes")
    out = per if reduction == "none" else np.asarray(per_sum * scale, dtype)
    return out, logp, t, coef, smooth


@njit
def _backward(logp, t, coef, smooth, weight, total, eps, g, dx):
    n, c = logp.shape
    gstride = 1 if g.size > 1 else 0
    one = logp.dtype.type(1)
    for i in range(n):
        gi = g[i * gstride]
        a = coef[i] * gi
        b = smooth[i] * gi
        ti = t[i]
        for j in range(c):
            p = np.exp(logp[i, j])
            v = (p - one if j == ti else p) * a
            if eps:
                v += (p * total - weight[j]) * b
            dx[i, j] = v


def backward(g, logp, t, coef, smooth, weight, eps):
    """``dx = coef * g * (softmax - onehot(t)) + smooth * g * (softmax * sum(w) - w)``."""
    dtype = logp.dtype
    w = _ones(logp.shape[1], dtype) if weight is None else np.ascontiguousarray(weight, dtype=dtype)
    total = dtype.type(logp.shape[1] if weight is None else w.sum())
    dx = np.empty_like(logp)
    _backward(logp, t, coef, smooth, w, total, bool(eps),
              np.ascontiguousarray(g, dtype=dtype).reshape(-1), dx)
    return dx
