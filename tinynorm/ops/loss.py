"""Fused, numerically stable log-softmax and cross-entropy.

``log_softmax(x)_i = x_i - m - log(sum_j exp(x_j - m))`` with ``m = max_j x_j``;
its vector-Jacobian product is ``g - softmax(x) * sum(g)``. Cross-entropy
against class indices fuses both: ``d loss / d x = w * (softmax(x) - onehot(t))``.
With label smoothing eps and class weights w_c (PyTorch's formula), per sample
``-(1 - eps) w_t log p_t - eps/C sum_c w_c log p_c``, whose gradient is
``(1 - eps) w_t (p - onehot(t)) + eps/C (p sum_c w_c - w)``; the mean divides by
``sum_n w_t``.
"""
import numpy as np

from ..autograd import Function
from ..backend import get_array_module, has_kernel
from ..kernels import kernels_for
from ..tensor import Tensor


def _host_kernel(logits, target, weight):
    """True when the fused CPU kernel takes these arrays (C-contiguous NumPy, a kernel dtype)."""
    return (type(logits) is np.ndarray and type(target) is np.ndarray and has_kernel(logits)
            and logits.flags.c_contiguous and target.dtype.kind in "iu"
            and (weight is None or type(weight) is np.ndarray))


def _log_softmax(x, axis):
    xp = get_array_module(x)
    if x.size == 0:
        return x.copy()
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    """``dtype`` (optional) casts ``x`` before the op; the gradient is cast back to ``x``'s dtype."""

    def forward(self, x, *, dim=-1, dtype=None):
        self.dim, self.in_dtype = dim, x.dtype
        y = _log_softmax(x if dtype is None else x.astype(dtype), dim)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        xp = get_array_module(g)
        (y,) = self.saved
        dx = g - xp.exp(y) * g.sum(axis=self.dim, keepdims=True)
        return dx.astype(self.in_dtype, copy=False)

    def backward_graph(self, g, inputs):
        if self.in_dtype != self.saved[0].dtype:
            return NotImplemented
        y = self.output if self.output is not None else LogSoftmax.apply(inputs[0], dim=self.dim)
        p = y.exp()
        return g - p * g.sum(dim=self.dim, keepdim=True)


class CrossEntropy(Function):
    """PyTorch's ``cross_entropy`` for logits (N, C) and integer targets (N,)."""

    def forward(self, logits, target, *, weight=None, ignore_index=-100,
                reduction="mean", label_smoothing=0.0):
        self.class_weight = weight
        self.eps = label_smoothing
        if _host_kernel(logits, target, weight):
            out, logp, t, self.coef, self.smooth = kernels_for("cross_entropy", logits).forward(
                logits, target, weight, ignore_index, label_smoothing, reduction)
            self.save_for_backward(logp, t)
            return out
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
            smooth = logp.sum(axis=1) if weight is None else logp @ weight
            per = -(1 - eps) * w * picked - eps / c * valid * smooth
        else:
            per = -w * picked
        if reduction == "mean":
            # The mean over a total weight of 0 is NaN; the gradient reaches only the samples
            # that count (torch's rule), so a batch whose targets are all ignore_index gets 0,
            # not NaN, and counted samples of class weight 0 get NaN as in torch.
            denom = w.sum()
            if xp is np:
                scale = 1.0 / denom if denom != 0 else float("nan")
            else:
                scale = xp.where(denom != 0, 1.0 / xp.where(denom != 0, denom, 1), xp.nan)
            out = per.sum() * scale
        elif reduction == "sum":
            scale, out = 1.0, per.sum()
        else:
            scale, out = 1.0, per
        self.save_for_backward(logp, t)
        # Per-sample factors of the gradient: (1 - eps) w_t / denom and eps / (C denom) for
        # counted samples, 0 for ignored ones (so a NaN scale never reaches them).
        self.coef = xp.where(valid, (1 - label_smoothing) * w * scale, 0).astype(logits.dtype)
        self.smooth = xp.where(valid, label_smoothing / c * scale, 0).astype(logits.dtype)
        return xp.asarray(out, dtype=logits.dtype)

    def backward(self, g):
        logp, t = self.saved
        if _host_kernel(logp, t, self.class_weight) and type(g) in (np.ndarray, np.generic):
            return kernels_for("cross_entropy", logp).backward(
                g, logp, t, self.coef, self.smooth, self.class_weight, self.eps), None
        xp = get_array_module(g)
        n, c = logp.shape
        p = xp.exp(logp)
        grad = p.copy()
        grad[xp.arange(n), t] -= 1
        grad *= (self.coef * g)[:, None]
        if self.eps:
            cw = self.class_weight
            smooth = p * (c if cw is None else cw.sum()) - (1 if cw is None else cw)
            grad += smooth * (self.smooth * g)[:, None]
        return grad.astype(logp.dtype, copy=False), None

    def backward_graph(self, g, inputs):
        xp = get_array_module(g.data)
        logp, t = self.saved
        n, c = logp.shape
        p = LogSoftmax.apply(inputs[0], dim=1).exp()
        onehot = xp.zeros_like(logp)
        onehot[xp.arange(n), t] = 1
        g = g.reshape(n, 1) if g.ndim == 1 else g
        grad = (p - Tensor(onehot)) * Tensor(self.coef[:, None]) * g
        if self.eps:
            cw = self.class_weight
            total = c if cw is None else cw.sum()
            shift = Tensor(xp.ones_like(logp) if cw is None else xp.broadcast_to(cw, logp.shape))
            grad = grad + (p * total - shift) * Tensor(self.smooth[:, None]) * g
        return grad, None
