"""Fused, numerically stable log-softmax and cross-entropy.

``log_softmax(x)_i = x_i - m - log(sum_j exp(x_j - m))`` with ``m = max_j x_j``;
its vector-Jacobian product is ``g - softmax(x) * sum(g)``. Cross-entropy
against class indices fuses both: ``d loss / d x = w * (softmax(x) - onehot(t))``.
"""
import numpy as np

from ..autograd import Function
from ..backend import get_array_module


def _log_softmax(x, axis):
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    def forward(self, x, *, dim=-1):
        self.dim = dim
        y = _log_softmax(x, dim)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        xp = get_array_module(g)
        (y,) = self.saved
        return g - xp.exp(y) * g.sum(axis=self.dim, keepdims=True)


class CrossEntropy(Function):
    """PyTorch's ``cross_entropy`` for logits (N, C) and integer targets (N,)."""

    def forward(self, logits, target, *, weight=None, ignore_index=-100,
                reduction="mean", label_smoothing=0.0):
        xp = get_array_module(logits)
        n, c = logits.shape
        logp = _log_softmax(logits, 1)
        valid = target != ignore_index
        t = xp.where(valid, target, 0).astype(xp.int64)
        if weight is None:
            w = valid.astype(logits.dtype)
        else:
            w = weight[t] * valid
        picked = logp[xp.arange(n), t]
        if label_smoothing:
            eps = label_smoothing
            per = -w * ((1 - eps) * picked + eps / c * logp.sum(axis=1))
        else:
            per = -w * picked
        if reduction == "mean":
            denom = w.sum()
            if xp is np:
                scale = 1.0 / denom if denom != 0 else float("nan")
            else:
                scale = xp.where(denom != 0, 1.0 / xp.where(denom != 0, denom, 1), xp.nan)
            out = per.sum() * scale
        elif reduction == "sum":
            scale, out = 1.0, per.sum()
        else:
            scale, out = None, per
        self.save_for_backward(logp, t, w)
        self.scale, self.eps = scale, label_smoothing
        return xp.asarray(out, dtype=logits.dtype)

    def backward(self, g):
        xp = get_array_module(g)
        logp, t, w = self.saved
        n, c = logp.shape
        grad = xp.exp(logp)
        if self.eps:
            grad -= self.eps / c
            grad[xp.arange(n), t] -= 1 - self.eps
        else:
            grad[xp.arange(n), t] -= 1
        coeff = w * (g * self.scale if self.scale is not None else g)
        return (grad * coeff[:, None]).astype(logp.dtype, copy=False), None
