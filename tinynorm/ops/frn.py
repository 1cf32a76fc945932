"""Filter Response Normalization and the Thresholded Linear Unit (Singh & Krishnan 2019).

Per (sample, channel) plane of S spatial values (S = 1 for (N, C) input)::

    nu2 = mean_s x^2,  r = 1/sqrt(nu2 + eps),  xhat = x * r
    y   = gamma * xhat + beta
    z   = max(y, tau)                                    (TLU, fused when tau is given)

Backward, with dy = dz * [y > tau] (ties split in halves, as torch.maximum)
and P = sum_s dy * xhat per plane::

    dx     = gamma * r * (dy - xhat * P / S)
    dgamma = sum_n P,  dbeta = sum_{n,s} dy,  dtau = sum_{n,s} dz * [y <= tau]
    deps   = -1/2 sum_n r^2 * gamma * P     (per channel; eps = |eps| + |eps_learned|)
"""
import numpy as np

from .. import buffer_pool, checks
from ..autograd import Function
from ..backend import check_float_dtype, get_array_module
from ..kernels import kernels_for
from ..tensor import Tensor, as_tensor
from .batch_norm import as_channels_3d


def _vector(xp, a, c, fill):
    if a is None:
        return xp.full(c, fill, dtype=np.float64)
    return xp.ascontiguousarray(a, dtype=np.float64).reshape(c)


class FilterResponseNorm(Function):
    """FRN (+ TLU when ``has_tau``) over (N, C, *spatial); backward as in the module docstring.

    Positional inputs: x, then whichever of weight, bias, tau, eps_learned are present.
    """

    def forward(self, x, *params, eps, has_weight, has_bias, has_tau, has_eps_learned):
        xp = get_array_module(x)
        it = iter(params)
        weight = next(it) if has_weight else None
        bias = next(it) if has_bias else None
        tau = next(it) if has_tau else None
        eps_learned = next(it) if has_eps_learned else None
        x3 = as_channels_3d(x)
        n, c, _ = x3.shape
        gamma, beta = _vector(xp, weight, c, 1.0), _vector(xp, bias, c, 0.0)
        tau64 = _vector(xp, tau, c, 0.0) if has_tau else None
        eps_vec = xp.full(c, abs(eps), dtype=np.float64)
        if has_eps_learned:
            eps_vec = eps_vec + xp.abs(eps_learned.astype(np.float64)).reshape(-1)
        z3 = buffer_pool.empty(xp, x3.shape, x3.dtype)
        rstd = xp.empty((n, c), dtype=np.float64)
        kernels_for("frn", x3).frn_forward(x3, gamma, beta, tau64, xp.ascontiguousarray(eps_vec),
                                           z3, rstd)
        self.save_for_backward(x3, gamma, beta, tau64, rstd, eps_learned)
        self.shape = x.shape
        self.layouts = [None if p is None else (p.dtype, p.shape)
                        for p in (weight, bias, tau, eps_learned)]
        return z3.reshape(x.shape)

    def backward(self, g):
        xp = get_array_module(g)
        x3, gamma, beta, tau64, rstd, eps_learned = self.saved
        n, c, _ = x3.shape
        g3 = as_channels_3d(g)
        need_dx = self.needs_input_grad[0]
        dx3 = buffer_pool.empty(xp, x3.shape, x3.dtype) if need_dx else None
        sum_dy, sum_dy_xhat, sum_dtau = (xp.empty((n, c), dtype=np.float64) for _ in range(3))
        kernels_for("frn", x3).frn_backward(g3, x3, gamma, beta, tau64, rstd, dx3,
                                            sum_dy, sum_dy_xhat, sum_dtau)
        grads = [dx3.reshape(self.shape) if need_dx else None]
        w, b, t, e = self.layouts
        for layout, total in ((w, sum_dy_xhat), (b, sum_dy), (t, sum_dtau)):
            if layout is not None:
                grads.append(total.sum(axis=0).astype(layout[0]).reshape(layout[1]))
        if e is not None:
            deps = -0.5 * gamma * (rstd * rstd * sum_dy_xhat).sum(axis=0)
            if eps_learned.size != c:
                deps = deps.sum()
            grads.append((deps.reshape(e[1]) * xp.sign(eps_learned)).astype(e[0]))
        return tuple(grads)


class TLU(Function):
    """z = max(x, tau[c]) over (N, C, *); gradients split in halves at ties."""

    def forward(self, x, tau):
        xp = get_array_module(x)
        self.t = tau.astype(x.dtype).reshape((1, -1) + (1,) * (x.ndim - 2))
        self.save_for_backward(x)
        self.tau_dtype = tau.dtype
        return xp.maximum(x, self.t)

    def backward(self, g):
        xp = get_array_module(g)
        (x,) = self.saved
        t = self.t
        tie = x == t
        dx = dtau = None
        if self.needs_input_grad[0]:
            dx = g * xp.where(x < t, 0.0, xp.where(tie, 0.5, 1.0)).astype(g.dtype)
        if self.needs_input_grad[1]:
            gt = g * xp.where(x > t, 0.0, xp.where(tie, 0.5, 1.0)).astype(g.dtype)
            axes = (0,) + tuple(range(2, x.ndim))
            dtau = gt.sum(axis=axes, dtype=np.float64).astype(self.tau_dtype)
        return dx, dtau


def _as_tensor(t):
    return t if t is None or isinstance(t, Tensor) else as_tensor(t)


def _check_input(input, fn):
    if input.ndim < 2:
        raise ValueError(f"{fn} expects input of shape (N, C, ...), got rank {input.ndim} "
                         f"(shape {tuple(input.shape)})")
    check_float_dtype(input.data, f"{fn} input")


def filter_response_norm(input, weight, bias, eps=1e-6, eps_learned=None, tau=None):
    """Filter Response Normalization (Singh & Krishnan 2019), optionally fused with TLU.

    Over every (n, c) plane of ``input`` (N, C, *spatial), or of (N, C)
    fully connected input (one value per plane)::

        nu2 = mean over spatial of x^2
        y   = weight * x / sqrt(nu2 + eps_eff) + bias,   eps_eff = |eps| + |eps_learned|
        z   = max(y, tau)                                 (when ``tau`` is given)

    There is no mean subtraction: the TLU's learned threshold ``tau`` is the
    paper's companion to FRN, and passing it here runs both in one kernel
    (the same as ``tlu(filter_response_norm(...), tau)`` but one pass over
    memory each way). ``weight``, ``bias``, ``tau`` are (C,) or None
    (1, 0, no TLU). ``eps_learned`` (a Tensor of one value or of shape (C,),
    or None) is the paper's learned epsilon, which matters for 1x1 maps and
    fully connected inputs where nu2 is a single squared value; its gradient
    is sign(eps_learned) * dL/deps_eff. Mean squares accumulate in float64.

    Filter Response Normalization Layer: Eliminating Batch Dependence in the
    Training of Deep Neural Networks, S. Singh and S. Krishnan, CVPR 2020
    (arXiv:1911.09737, 2019).
    """
    fn = "filter_response_norm"
    input = _as_tensor(input)
    _check_input(input, fn)
    c = input.shape[1]
    weight, bias, tau, eps_learned = map(_as_tensor, (weight, bias, tau, eps_learned))
    for t, what in ((weight, "weight"), (bias, "bias"), (tau, "tau")):
        checks.param(t, (c,), what, fn)
    if eps_learned is not None:
        check_float_dtype(eps_learned.data, f"{fn}: eps_learned")
        if eps_learned.numel() not in (1, c):
            raise ValueError(f"{fn}: eps_learned has shape {tuple(eps_learned.shape)}, expected "
                             f"one value or ({c},) for {c} channels")
    eps = checks.eps(eps, f"{fn}: eps")
    params = [t for t in (weight, bias, tau, eps_learned) if t is not None]
    return FilterResponseNorm.apply(
        input, *params, eps=float(eps), has_weight=weight is not None, has_bias=bias is not None,
        has_tau=tau is not None, has_eps_learned=eps_learned is not None)


def tlu(input, tau):
    """Thresholded Linear Unit (Singh & Krishnan 2019): ``max(x, tau[c])`` over (N, C, *).

    ``tau`` is a learned per-channel threshold of shape (C,); with tau = 0 this is
    ReLU. At ties (x == tau) the gradient is split in halves between x and tau,
    as for ``torch.maximum``; a NaN x gives NaN.
    """
    fn = "tlu"
    input = _as_tensor(input)
    _check_input(input, fn)
    tau = _as_tensor(tau)
    if tau is None:
        raise ValueError("tlu: tau is required")
    checks.param(tau, (input.shape[1],), "tau", fn)
    return TLU.apply(input, tau)
