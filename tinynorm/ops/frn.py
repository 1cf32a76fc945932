"""Filter Response Normalization and the Thresholded Linear Unit, fused or apart.

The formulas, defaults and paper are :func:`filter_response_norm`'s and
:func:`tlu`'s docstrings; the backward is :class:`FilterResponseNorm`'s.
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
    """FRN, and the TLU when ``tau`` is given, over (N, C, *spatial) in one kernel each way.

    Inputs ``(x, weight, bias, tau, eps_learned)``, each but x possibly None.
    With ``xhat = x*r`` (``r = 1/sqrt(nu2 + eps_eff)``), ``dy = dz*[y > tau]``
    (a tie ``y == tau`` sends half to each side, as ``torch.maximum``) and
    ``P = sum_s dy*xhat`` per (n, c) plane of S values, in float64::

        dx        = gamma * r * (dy - xhat * P / S)
        dgamma    = sum_n P,  dbeta = sum_{n,s} dy,  dtau = sum_{n,s} dz * [y <= tau]
        d eps_eff = -1/2 sum_n r^2 * gamma * P,   d eps_learned = sign(eps_learned) * d eps_eff
    """

    def forward(self, x, weight, bias, tau, eps_learned, *, eps):
        xp = get_array_module(x)
        x3 = as_channels_3d(x)
        n, c, _ = x3.shape
        gamma, beta = _vector(xp, weight, c, 1.0), _vector(xp, bias, c, 0.0)
        tau64 = None if tau is None else _vector(xp, tau, c, 0.0)
        eps_vec = xp.full(c, abs(eps), dtype=np.float64)
        if eps_learned is not None:
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
        for layout, total in zip(self.layouts[:3], (sum_dy_xhat, sum_dy, sum_dtau)):
            grads.append(None if layout is None
                         else total.sum(axis=0).astype(layout[0]).reshape(layout[1]))
        e = self.layouts[3]
        if e is None:
            return (*grads, None)
        deps = -0.5 * gamma * (rstd * rstd * sum_dy_xhat).sum(axis=0)
        if eps_learned.size != c:
            deps = deps.sum()
        return (*grads, (deps.reshape(e[1]) * xp.sign(eps_learned)).astype(e[0]))


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
    """Filter Response Normalization, optionally fused with the TLU.

    Over every (n, c) plane of ``input`` (N, C, *spatial), or of (N, C)
    fully connected input (one value per plane)::

        nu2 = mean over spatial of x^2
        y   = weight * x / sqrt(nu2 + eps_eff) + bias,   eps_eff = |eps| + |eps_learned|
        z   = max(y, tau)                                 (when ``tau`` is given)

    There is no mean subtraction: the TLU's learned threshold ``tau`` is the
    paper's companion to FRN, and passing it here runs both in one kernel
    (the same as ``tlu(filter_response_norm(...), tau)`` but one pass over
    memory each way); with tau = 0 the TLU is ReLU. ``weight``, ``bias``,
    ``tau`` are (C,) or None (1, 0, no TLU); ``eps=1e-6``. ``eps_learned`` (a
    Tensor of one value or of shape (C,), or None) is the paper's learned
    epsilon, which matters for 1x1 maps and fully connected inputs where nu2
    is a single squared value; its gradient is sign(eps_learned) *
    dL/deps_eff. Mean squares accumulate in float64; a NaN in a plane gives
    NaN, and the TLU keeps it NaN. The backward is :class:`FilterResponseNorm`'s.

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
    return FilterResponseNorm.apply(input, weight, bias, tau, eps_learned, eps=float(eps))


def tlu(input, tau):
    """Thresholded Linear Unit: ``z = max(x, tau[c])`` over (N, C, *) of rank >= 2.

    ``tau`` is a learned per-channel threshold of shape (C,), required; with
    tau = 0 this is ReLU. At ties (x == tau) the gradient is split in halves
    between x and tau, as for ``torch.maximum``; a NaN x gives NaN. The paper
    pairs it with FRN, which does no mean centering;
    ``filter_response_norm(..., tau=tau)`` runs both in one kernel.

    Same paper as :func:`filter_response_norm` (Singh & Krishnan, CVPR 2020).
    """
    fn = "tlu"
    input = _as_tensor(input)
    _check_input(input, fn)
    tau = _as_tensor(tau)
    if tau is None:
        raise ValueError("tlu: tau is required")
    checks.param(tau, (input.shape[1],), "tau", fn)
    return TLU.apply(input, tau)
