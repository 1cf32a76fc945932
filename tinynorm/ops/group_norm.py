"""Group, Layer and Instance Normalization: one Function over an (N, G, K, S) view.

Each row (n, g) of the view is normalized by its own mean and biased
variance, and slot (g, k) has its own gamma and beta::

    y = (x - mean_ng) / sqrt(var_ng + eps) * gamma_gk + beta_gk

    group_norm     (N, G, C/G, *spatial)  per-channel affine   Wu & He 2018
    layer_norm     (rows, 1, M, 1)        elementwise affine   Ba, Kiros & Hinton 2016
    instance_norm  (N, C, 1, *spatial)    per-channel affine   Ulyanov, Vedaldi & Lempitsky 2016

Forward (one fused kernel): stats per row, then y. Backward (one fused
kernel): A = sum dy*gamma*(x - mean), B = sum dy*gamma per row, then
``dx = rstd * (gamma*dy - B/M - xhat * rstd*A/M)``, ``dgamma = sum dy*xhat``,
``dbeta = sum dy`` over (n, s).

``instance_norm`` with ``use_input_stats=False`` normalizes with the running
statistics, a per-channel affine map with constant coefficients; it runs as
BatchNorm in eval mode.
"""
import numbers

import numpy as np

from .. import checks, memory
from ..autograd import Function
from ..backend import check_float_dtype, get_array_module
from ..kernels import kernels_for
from ..tensor import Tensor, as_tensor
from . import batch_norm as _bn


def _prod(dims):
    p = 1
    for d in dims:
        p *= int(d)
    return p


def _float64_vector(t, xp):
    return None if t is None else xp.ascontiguousarray(t.reshape(-1), dtype=np.float64)


class GroupNorm(Function):
    """Normalize the rows of the (N, G, K, S) view ``view`` of x; optional gamma/beta of G*K values.

    ``stats_out``, when given, is a dict that receives the rows' ``mean`` and
    ``rstd`` (float64 (N, G)).
    """

    def forward(self, x, *affine, view, eps, has_weight, has_bias, stats_out=None):
        xp = get_array_module(x)
        weight = affine[0] if has_weight else None
        bias = affine[-1] if has_bias else None
        x4 = xp.ascontiguousarray(x).reshape(view)
        w = _float64_vector(weight, xp)
        n, g = view[0], view[1]
        mean = xp.empty((n, g), dtype=np.float64)
        rstd = xp.empty((n, g), dtype=np.float64)
        y4 = memory.empty(xp, view, x4.dtype)
        kernels_for("group_norm", x4).gn_forward(x4, w, _float64_vector(bias, xp), eps, y4,
                                                 mean, rstd)
        if stats_out is not None:
            stats_out["mean"], stats_out["rstd"] = mean, rstd
        self.save_for_backward(x4, w)
        self.mean, self.rstd = mean, rstd
        self.shape, self.view = x.shape, view
        self.weight_meta = None if weight is None else (weight.shape, weight.dtype)
        self.bias_meta = None if bias is None else (bias.shape, bias.dtype)
        return y4.reshape(x.shape)

    def backward(self, g):
        xp = get_array_module(g)
        x4, w = self.saved
        g4 = xp.ascontiguousarray(g, dtype=x4.dtype).reshape(x4.shape)
        slots = x4.shape[1] * x4.shape[2]
        need = iter(self.needs_input_grad)
        dx4 = memory.empty(xp, x4.shape, x4.dtype) if next(need) else None
        dw = xp.empty(slots, dtype=np.float64) if self.weight_meta and next(need) else None
        db = xp.empty(slots, dtype=np.float64) if self.bias_meta and next(need) else None
        kernels_for("group_norm", x4).gn_backward(g4, x4, w, self.mean, self.rstd, dx4, dw, db)
        grads = [None if dx4 is None else dx4.reshape(self.shape)]
        for meta, d in ((self.weight_meta, dw), (self.bias_meta, db)):
            if meta is not None:
                grads.append(None if d is None else d.astype(meta[1]).reshape(meta[0]))
        return tuple(grads)

    @property
    def has_weight(self):
        return self.weight_meta is not None

    def backward_graph(self, g, inputs):
        """With create_graph: :class:`~tinynorm.ops.norm_double_backward.GroupNormGrad` (its backward is the double backward)."""
        from .norm_double_backward import GroupNormGrad, graph_grads
        return graph_grads(self, g, inputs, GroupNormGrad)


def _as_input(input, name):
    if not isinstance(input, Tensor):
        input = as_tensor(input)
    check_float_dtype(input.data, f"{name} input")
    return input


def _apply(input, weight, bias, view, eps, stats_out=None):
    eps = checks.eps(eps)
    affine = [t for t in (weight, bias) if t is not None]
    return GroupNorm.apply(input, *affine, view=view, eps=float(eps),
                           has_weight=weight is not None, has_bias=bias is not None,
                           stats_out=stats_out)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Group Normalization (Wu & He 2018), ``torch.nn.functional.group_norm``.

    The C channels of ``input`` (N, C, *) are split into ``num_groups`` groups
    of C/G consecutive channels; each (sample, group) is normalized over its
    C/G * prod(spatial) values by its mean and biased variance:
    ``y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c]``.
    """
    input = _as_input(input, "group_norm")
    if input.ndim < 2:
        raise ValueError(f"group_norm expects input of shape (N, C, ...), got rank {input.ndim}")
    n, c = input.shape[0], input.shape[1]
    if not isinstance(num_groups, numbers.Integral) or num_groups < 1:
        raise ValueError(f"group_norm: num_groups must be a positive integer, got {num_groups!r}")
    if c % num_groups:
        raise ValueError(f"group_norm: number of channels {c} is not divisible by "
                         f"num_groups {num_groups}")
    s = _prod(input.shape[2:])
    if n * (c // num_groups) * s == 1:
        raise ValueError("Expected more than 1 value per channel when training, "
                         f"got input size {tuple(input.shape)}")
    checks.param(weight, (c,), "weight", "group_norm")
    checks.param(bias, (c,), "bias", "group_norm")
    return _apply(input, weight, bias, (n, num_groups, c // num_groups, s), eps)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer Normalization (Ba, Kiros & Hinton 2016), ``torch.nn.functional.layer_norm``.

    Every sample is normalized over its trailing ``normalized_shape`` axes by
    their mean and biased variance, then scaled and shifted elementwise:
    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` (weight and bias of
    shape ``normalized_shape``).
    """
    input = _as_input(input, "layer_norm")
    normalized_shape = checks.normalized_shape(normalized_shape, "layer_norm: normalized_shape")
    k = len(normalized_shape)
    if k == 0:
        raise ValueError("layer_norm: normalized_shape must have at least one dimension")
    if input.ndim < k or tuple(input.shape[input.ndim - k:]) != normalized_shape:
        raise ValueError(f"layer_norm: given normalized_shape={list(normalized_shape)}, expected "
                         f"input with shape [*, {', '.join(map(str, normalized_shape))}], "
                         f"but got input of size {list(input.shape)}")
    checks.param(weight, normalized_shape, "weight", "layer_norm")
    checks.param(bias, normalized_shape, "bias", "layer_norm")
    rows = _prod(input.shape[:input.ndim - k])
    return _apply(input, weight, bias, (rows, 1, _prod(normalized_shape), 1), eps)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Instance Normalization (Ulyanov et al. 2016), ``torch.nn.functional.instance_norm``.

    Each (sample, channel) of ``input`` (N, C, *spatial) is normalized over its
    spatial values: ``y = (x - mean_nc) / sqrt(var_nc + eps) * weight[c] + bias[c]``.
    With ``use_input_stats`` and running statistics given, they are updated as
    PyTorch does: ``running = (1 - momentum) * running + momentum * batch``, with
    the batch's per-instance means and *unbiased* variances averaged over N.
    With ``use_input_stats=False`` the running statistics normalize instead.
    """
    input = _as_input(input, "instance_norm")
    if input.ndim < 3:
        raise ValueError(f"instance_norm expects input of shape (N, C, *spatial), "
                         f"got rank {input.ndim}")
    n, c = input.shape[0], input.shape[1]
    for t, what in ((running_mean, "running_mean"), (running_var, "running_var"),
                    (weight, "weight"), (bias, "bias")):
        checks.param(t, (c,), what, "instance_norm")
    s = _prod(input.shape[2:])
    checks.eps(eps, "instance_norm: eps")
    checks.momentum(momentum, "instance_norm: momentum")
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ValueError("instance_norm: running_mean and running_var must be given "
                             "when use_input_stats is False")
        xp = get_array_module(input.data)
        mean = xp.asarray(running_mean.data, dtype=np.float64)
        invstd = 1.0 / xp.sqrt(xp.asarray(running_var.data, dtype=np.float64) + eps)
        return _bn.BatchNorm.apply(input, weight, bias, mean=mean, invstd=invstd)
    if s == 1:
        raise ValueError("Expected more than 1 spatial element when training, "
                         f"got input size {tuple(input.shape)}")
    stats = {}
    out = _apply(input, weight, bias, (n, c, 1, s), eps, stats_out=stats)
    if n and (running_mean is not None or running_var is not None):
        m = float(momentum)
        if running_mean is not None:
            rm = running_mean.data
            rm[...] = (1 - m) * rm + m * stats["mean"].mean(axis=0)
        if running_var is not None:
            rstd = stats["rstd"]
            unbiased = (1.0 / (rstd * rstd) - eps) * (s / (s - 1))
            rv = running_var.data
            rv[...] = (1 - m) * rv + m * unbiased.mean(axis=0)
    return out
