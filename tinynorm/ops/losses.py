"""The common losses of ``torch.nn.functional``, each with ``reduction`` 'mean', 'sum' or 'none'.

NLL, MSE, L1 and smooth L1 are compositions of tape ops; binary cross-entropy
(on probabilities and on logits) is one elementwise Function each, so that its
gradient is PyTorch's closed form, finite where PyTorch's is.
"""
import numpy as np

from .. import autograd
from ..autograd import Function
from ..backend import check_float_dtype, get_array_module, to_numpy
from ..tensor import Tensor, as_tensor

_REDUCTIONS = ("mean", "sum", "none")


def _reduction(reduction, name):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: {reduction!r} is not a valid value for reduction (expected "
                         "'mean', 'sum' or 'none')")


def _reduce(per, reduction):
    if reduction == "none":
        return per
    return per.sum() if reduction == "sum" else per.mean()


def _pair(input, target, name, target_float=True):
    input, target = as_tensor(input), as_tensor(target)
    check_float_dtype(input.data, f"{name} input")
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"{name}: target shape {tuple(target.shape)} differs from input shape "
                         f"{tuple(input.shape)}; they must be equal (PyTorch would broadcast and "
                         "warn that the result is likely wrong)")
    if target_float and target.dtype != input.dtype:
        if target.dtype.kind not in "biuf":
            raise ValueError(f"{name}: target must hold numbers, got {target.dtype}")
        target = target._cast(input.dtype) if target.dtype.kind == "f" else Tensor(
            target.data.astype(input.dtype))
    return input, target


def not_differentiable(t, name, arg):
    """PyTorch's refusal of a gradient it does not define (a loss's class or element weight),
    rather than a gradient silently dropped."""
    if isinstance(t, Tensor) and t.requires_grad and autograd.is_grad_enabled():
        raise RuntimeError(f"The function '{name}' is not differentiable with respect to argument "
                           f"'{arg}'. This input cannot have requires_grad True.")


def _weight(weight, input, name, arg="weight"):
    if weight is None:
        return None
    not_differentiable(weight, name, arg)
    w = as_tensor(weight)
    try:
        np.broadcast_shapes(tuple(w.shape), tuple(input.shape))
    except ValueError:
        raise ValueError(f"{name}: weight of shape {tuple(w.shape)} does not broadcast to the "
                         f"input's {tuple(input.shape)}") from None
    xp = get_array_module(input.data)
    return Tensor(xp.asarray(w.data, dtype=input.dtype))


def mse_loss(input, target, reduction="mean"):
    """``(x - y)^2`` per element (``torch.nn.functional.mse_loss``)."""
    _reduction(reduction, "mse_loss")
    input, target = _pair(input, target, "mse_loss")
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input, target, reduction="mean"):
    """``|x - y|`` per element (``torch.nn.functional.l1_loss``); the gradient at 0 is 0."""
    _reduction(reduction, "l1_loss")
    input, target = _pair(input, target, "l1_loss")
    return _reduce((input - target).abs(), reduction)


class SmoothL1(Function):
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (``d = x - y``)."""

    def forward(self, d, *, beta):
        xp = get_array_module(d)
        a = xp.abs(d)
        self.save_for_backward(d)
        self.beta = beta
        if beta == 0:
            return a
        return xp.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta).astype(d.dtype, copy=False)

    def backward(self, g):
        xp = get_array_module(g)
        (d,) = self.saved
        if self.beta == 0:
            return g * xp.sign(d)
        slope = xp.where(xp.abs(d) < self.beta, d / self.beta, xp.sign(d))
        return (g * slope).astype(d.dtype, copy=False)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """Huber-like loss (``torch.nn.functional.smooth_l1_loss``): with ``d = x - y``,
    ``0.5 d^2 / beta`` if ``|d| < beta`` else ``|d| - 0.5 beta``; ``beta=0`` is the L1 loss."""
    from .. import checks
    _reduction(reduction, "smooth_l1_loss")
    beta = checks.number(beta, "smooth_l1_loss: beta", 0.0)
    input, target = _pair(input, target, "smooth_l1_loss")
    return _reduce(SmoothL1.apply(input - target, beta=beta), reduction)


class BinaryCrossEntropy(Function):
    """``-(y max(log x, -100) + (1 - y) max(log(1 - x), -100))``; gradient
    ``(x - y) / max(x (1 - x), 1e-12)`` (PyTorch's clamps)."""

    def forward(self, x, y):
        xp = get_array_module(x)
        with np.errstate(divide="ignore"):
            log_x = xp.maximum(xp.log(x), -100)
            log_1mx = xp.maximum(xp.log1p(-x), -100)
        self.save_for_backward(x, y, log_x, log_1mx)
        return (-(y * log_x + (1 - y) * log_1mx)).astype(x.dtype, copy=False)

    def backward(self, g):
        xp = get_array_module(g)
        x, y, log_x, log_1mx = self.saved
        gx = gy = None
        if self.needs_input_grad[0]:
            gx = (g * (x - y) / xp.maximum((1 - x) * x, 1e-12)).astype(x.dtype, copy=False)
        if self.needs_input_grad[1]:                        # d/dy, as PyTorch's target gradient
            gy = (g * (log_1mx - log_x)).astype(y.dtype, copy=False)
        return gx, gy


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """``-w (y log x + (1 - y) log(1 - x))`` per element, each log clamped at -100
    (``torch.nn.functional.binary_cross_entropy``); ``input`` holds probabilities in [0, 1]."""
    _reduction(reduction, "binary_cross_entropy")
    input, target = _pair(input, target, "binary_cross_entropy")
    for name, a in (("input", input.data), ("target", target.data)):
        if a.size and not bool(((a >= 0) & (a <= 1)).all()):
            raise ValueError(f"binary_cross_entropy: all elements of {name} should be between 0 "
                             "and 1 (probabilities; for logits use "
                             "binary_cross_entropy_with_logits)")
    per = BinaryCrossEntropy.apply(input, target)
    w = _weight(weight, input, "binary_cross_entropy")
    return _reduce(per if w is None else per * w, reduction)


class BinaryCrossEntropyWithLogits(Function):
    """``(1 - y) x + c softplus(-x)`` with ``c = 1 + (pos_weight - 1) y``; gradient
    ``(1 - y) - c sigmoid(-x)``."""

    def forward(self, x, y, pw):
        xp = get_array_module(x)
        c = 1 + (pw - 1) * y
        self.pw = pw
        softplus = xp.maximum(-x, 0) + xp.log1p(xp.exp(-xp.abs(x)))
        self.save_for_backward(x, y, c)
        return ((1 - y) * x + c * softplus).astype(x.dtype, copy=False)

    def backward(self, g):
        xp = get_array_module(g)
        x, y, c = self.saved
        e = xp.exp(-xp.abs(x))
        sig_neg = xp.where(x >= 0, e / (1 + e), 1 / (1 + e))
        grad = (g * ((1 - y) - c * sig_neg)).astype(x.dtype, copy=False)
        gy = None
        if self.needs_input_grad[1]:                    # d/dy = -x + (pw - 1) softplus(-x)
            softplus = xp.maximum(-x, 0) + xp.log1p(e)
            gy = (g * (-x + (self.pw - 1) * softplus)).astype(y.dtype, copy=False)
        return grad, gy, None                           # pos_weight: refused, as in PyTorch


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """Sigmoid and binary cross-entropy fused, stable for any logit
    (``torch.nn.functional.binary_cross_entropy_with_logits``): per element
    ``-w (p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)))``, ``p`` = ``pos_weight``
    (broadcast along the last axis)."""
    _reduction(reduction, "binary_cross_entropy_with_logits")
    input, target = _pair(input, target, "binary_cross_entropy_with_logits")
    pw = Tensor(input.dtype.type(1))
    if pos_weight is not None:
        pw = _weight(pos_weight, input, "binary_cross_entropy_with_logits", "pos_weight")
    per = BinaryCrossEntropyWithLogits.apply(input, target, pw)
    w = _weight(weight, input, "binary_cross_entropy_with_logits")
    return _reduce(per if w is None else per * w, reduction)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities (``torch.nn.functional.nll_loss``):
    ``loss_n = -w_{t_n} x[n, t_n]`` for ``t_n != ignore_index``; 'mean' divides the sum by
    ``sum_n w_{t_n}`` over the samples not ignored. ``input`` is (N, C), (N, C, d1, ...) or (C,)."""
    _reduction(reduction, "nll_loss")
    input, target = as_tensor(input), as_tensor(target)
    check_float_dtype(input.data, "nll_loss input")
    if input.ndim < 1:
        raise ValueError("nll_loss expects input of shape (N, C, ...) or (C,), got a scalar")
    if target.dtype.kind not in "iu":
        raise ValueError(f"nll_loss: target must hold integer class indices, got {target.dtype}")
    if input.ndim == 1:
        if target.ndim != 0:
            raise ValueError(f"nll_loss: unbatched input of shape {tuple(input.shape)} needs a "
                             f"scalar target, got shape {tuple(target.shape)}")
        out = nll_loss(input.reshape(1, -1), target.data.reshape(1), weight, ignore_index, reduction)
        return out.reshape(()) if reduction == "none" else out
    n, c = input.shape[0], input.shape[1]
    expect = (n,) + tuple(input.shape[2:])
    if tuple(target.shape) != expect:
        raise ValueError(f"nll_loss: target shape {tuple(target.shape)} does not match input "
                         f"{tuple(input.shape)}; expected {expect}")
    xp = get_array_module(input.data)
    t = to_numpy(target.data).astype(np.int64)
    valid = t != ignore_index
    if valid.any() and (t[valid].min() < 0 or t[valid].max() >= c):
        bad = t[valid][(t[valid] < 0) | (t[valid] >= c)][0]
        raise IndexError(f"nll_loss: Target {bad} is out of bounds: target values must lie in "
                         f"[0, {c}) or equal ignore_index {ignore_index}")
    w = np.ones(c, input.dtype)
    if weight is not None:
        not_differentiable(weight, "nll_loss", "weight")
        w = np.asarray(to_numpy(as_tensor(weight).data), dtype=input.dtype)
        if w.shape != (c,):
            raise ValueError(f"nll_loss: weight should be defined for all {c} classes, got weight "
                             f"of shape {w.shape}")
    if input.ndim > 2:
        axes = (0,) + tuple(range(2, input.ndim)) + (1,)
        flat = input.permute(axes).reshape(-1, c)
    else:
        flat = input
    tf, vf = t.reshape(-1), valid.reshape(-1)
    safe = np.where(vf, tf, 0)
    wt = (w[safe] * vf).astype(input.dtype)
    if reduction == "none":
        picked = flat[xp.arange(len(safe)), xp.asarray(safe)]
        return (picked * Tensor(xp.asarray(-wt))).reshape(expect)
    # Only the samples that count are picked, so ignored ones get no gradient (torch's rule):
    # every target ignored gives a NaN mean whose gradient is 0; counted samples whose class
    # weights sum to 0 get NaN gradients, as in torch.
    rows = np.flatnonzero(vf)
    picked = flat[xp.asarray(rows), xp.asarray(tf[rows])]
    total = (picked * Tensor(xp.asarray(-wt[rows]))).sum()
    if reduction == "sum":
        return total
    denom = wt.sum()
    return total * (1.0 / denom if denom != 0 else float("nan"))
