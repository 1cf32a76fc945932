"""Instance Normalization: GroupNorm's case of one channel per group, plus running statistics.

With input statistics, InstanceNorm is :class:`~tinynorm.ops.group_norm.GroupNorm`
over the view (N, C, 1, prod(spatial)): G = C groups of one channel each, so it
shares GroupNorm's kernel family, its stats -> apply split and its double
backward (the tape names the node ``GroupNorm``). What InstanceNorm adds is
PyTorch's running statistics (``track_running_stats``): training folds the
per-instance statistics of the kernel's stats step (``stats_out``) into the
buffers, and eval normalizes with the buffers, a per-channel affine map with
constant coefficients, which is BatchNorm in eval mode.
"""
import math

from .. import checks
from .batch_norm import batch_norm
from .group_norm import float_input, normalize_rows


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
                  use_input_stats=True, momentum=0.1, eps=1e-5):
    """Instance Normalization, ``torch.nn.functional.instance_norm``.

    Each (sample n, channel c) of ``input`` (N, C, *spatial) of rank >= 3 is
    normalized over its S = prod(spatial) values by their mean and biased
    variance::

        y[n, c] = (x[n, c] - mean_nc) / sqrt(var_nc + eps) * weight[c] + bias[c]

    ``weight``, ``bias``, ``running_mean``, ``running_var`` are (C,) or None;
    ``momentum=0.1``, ``eps=1e-5``. With ``use_input_stats`` and running
    statistics given, they are updated as PyTorch does,
    ``running = (1 - momentum) * running + momentum * batch``, where ``batch``
    is the per-instance mean and *unbiased* variance (``S/(S-1)``) averaged over
    N; a single spatial value raises. With ``use_input_stats=False`` the
    running statistics normalize instead (both must be given), as BatchNorm in
    eval mode.

    Instance Normalization: The Missing Ingredient for Fast Stylization,
    D. Ulyanov, A. Vedaldi and V. Lempitsky, arXiv:1607.08022, 2016.
    """
    input = float_input(input, "instance_norm")
    if input.ndim < 3:
        raise ValueError(f"instance_norm expects input of shape (N, C, *spatial), "
                         f"got rank {input.ndim}")
    n, c = input.shape[0], input.shape[1]
    for t, what in ((running_mean, "running_mean"), (running_var, "running_var"),
                    (weight, "weight"), (bias, "bias")):
        checks.param(t, (c,), what, "instance_norm")
    s = math.prod(int(d) for d in input.shape[2:])
    checks.eps(eps, "instance_norm: eps")
    checks.momentum(momentum, "instance_norm: momentum")
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ValueError("instance_norm: running_mean and running_var must be given "
                             "when use_input_stats is False")
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    if s == 1:
        raise ValueError("Expected more than 1 spatial element when training, "
                         f"got input size {tuple(input.shape)}")
    stats = {}
    out = normalize_rows(input, weight, bias, (n, c, 1, s), eps, stats_out=stats)
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
