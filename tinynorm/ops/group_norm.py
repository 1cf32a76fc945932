"""Group Normalization, and the one Function that LayerNorm and InstanceNorm run on too.

:class:`GroupNorm` normalizes the rows of an (N, G, K, S) view of its input;
:func:`group_norm` (here), :func:`~tinynorm.ops.layer_norm.layer_norm` and
:func:`~tinynorm.ops.instance_norm.instance_norm` differ only in the view they
choose, so all three share one forward and one backward kernel family
(``kernels/*/group_norm.py``) and one double backward
(:class:`~tinynorm.ops.norm_double_backward.GroupNormGrad`).
"""
import math
import numbers

import numpy as np

from .. import buffer_pool, checks
from ..autograd import Function
from ..backend import check_float_dtype, get_array_module
from ..kernels import kernels_for
from ..tensor import Tensor, as_tensor


def _float64_vector(t, xp):
    return None if t is None else xp.ascontiguousarray(t.reshape(-1), dtype=np.float64)


class GroupNorm(Function):
    """Normalize each row (n, g) of the (N, G, K, S) view ``view`` of x; gamma, beta per slot (g, k).

    With ``M = K*S`` values per row, their mean and biased variance, and
    ``rstd = 1/sqrt(var + eps)``::

        y = (x - mean_ng) * rstd_ng * gamma_gk + beta_gk

    Inputs ``(x, weight, bias)``; ``weight`` and ``bias`` hold G*K values or
    are None (1 and 0). Forward is one fused kernel (row statistics, then y);
    so is backward, with ``A = sum dy*gamma*(x - mean)``, ``B = sum dy*gamma``
    per row::

        dx     = rstd * (gamma*dy - B/M - xhat * rstd*A/M)
        dgamma = sum over (n, s) of dy*xhat,   dbeta = sum over (n, s) of dy

    Statistics and parameter sums are float64. ``stats_out``, when given, is a
    dict that receives the rows' ``mean`` and ``rstd`` (float64 (N, G)).
    """

    def forward(self, x, weight, bias, *, view, eps, stats_out=None):
        xp = get_array_module(x)
        x4 = xp.ascontiguousarray(x).reshape(view)
        w = _float64_vector(weight, xp)
        n, g = view[0], view[1]
        mean = xp.empty((n, g), dtype=np.float64)
        rstd = xp.empty((n, g), dtype=np.float64)
        y4 = buffer_pool.empty(xp, view, x4.dtype)
        kernels_for("group_norm", x4).gn_forward(x4, w, _float64_vector(bias, xp), eps, y4,
                                                 mean, rstd)
        if stats_out is not None:
            stats_out["mean"], stats_out["rstd"] = mean, rstd
        self.save_for_backward(x4, w)
        self.mean, self.rstd = mean, rstd
        self.shape, self.view = x.shape, view
        self.affine_layouts = [None if p is None else (p.shape, p.dtype) for p in (weight, bias)]
        return y4.reshape(x.shape)

    def backward(self, g):
        xp = get_array_module(g)
        x4, w = self.saved
        g4 = xp.ascontiguousarray(g, dtype=x4.dtype).reshape(x4.shape)
        slots = x4.shape[1] * x4.shape[2]
        need_x, need_w, need_b = self.needs_input_grad
        dx4 = buffer_pool.empty(xp, x4.shape, x4.dtype) if need_x else None
        dw = xp.empty(slots, dtype=np.float64) if need_w else None
        db = xp.empty(slots, dtype=np.float64) if need_b else None
        kernels_for("group_norm", x4).gn_backward(g4, x4, w, self.mean, self.rstd, dx4, dw, db)
        grads = [None if dx4 is None else dx4.reshape(self.shape)]
        for layout, d in zip(self.affine_layouts, (dw, db)):
            grads.append(None if d is None else d.astype(layout[1]).reshape(layout[0]))
        return tuple(grads)

    def backward_graph(self, g, inputs):
        """With create_graph: :class:`~tinynorm.ops.norm_double_backward.GroupNormGrad` (its backward is the double backward)."""
        from .norm_double_backward import GroupNormGrad, graph_grads
        return graph_grads(self, g, inputs, GroupNormGrad)


def float_input(input, name):
    """``input`` as a Tensor, refused unless float32 or float64 (the norms' first check)."""
    if not isinstance(input, Tensor):
        input = as_tensor(input)
    check_float_dtype(input.data, f"{name} input")
    return input


def normalize_rows(input, weight, bias, view, eps, stats_out=None):
    """:class:`GroupNorm` over the ``view`` of ``input``, after the eps rule."""
    eps = checks.eps(eps)
    return GroupNorm.apply(input, weight, bias, view=view, eps=float(eps), stats_out=stats_out)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Group Normalization, ``torch.nn.functional.group_norm``.

    The C channels of ``input`` (N, C, *) of rank >= 2 are split into
    G = ``num_groups`` groups of C/G consecutive channels; each (sample n,
    group g) is normalized over its M = C/G * prod(spatial) values by their
    mean and biased variance, then scaled and shifted per channel::

        y[n, c] = (x[n, c] - mean_ng) / sqrt(var_ng + eps) * weight[c] + bias[c]

    ``weight`` and ``bias`` are (C,) or None (1 and 0); ``eps=1e-5``. C must be
    divisible by G; a single value per group in total (N * C/G * prod(spatial)
    == 1) raises, as in PyTorch. Runs as :class:`GroupNorm` over the view
    (N, G, C/G, prod(spatial)).

    Group Normalization, Y. Wu and K. He, ECCV 2018.
    """
    input = float_input(input, "group_norm")
    if input.ndim < 2:
        raise ValueError(f"group_norm expects input of shape (N, C, ...), got rank {input.ndim}")
    n, c = input.shape[0], input.shape[1]
    if not isinstance(num_groups, numbers.Integral) or num_groups < 1:
        raise ValueError(f"group_norm: num_groups must be a positive integer, got {num_groups!r}")
    if c % num_groups:
        raise ValueError(f"group_norm: number of channels {c} is not divisible by "
                         f"num_groups {num_groups}")
    s = math.prod(int(d) for d in input.shape[2:])
    if n * (c // num_groups) * s == 1:
        raise ValueError("Expected more than 1 value per channel when training, "
                         f"got input size {tuple(input.shape)}")
    checks.param(weight, (c,), "weight", "group_norm")
    checks.param(bias, (c,), "bias", "group_norm")
    return normalize_rows(input, weight, bias, (n, num_groups, c // num_groups, s), eps)
