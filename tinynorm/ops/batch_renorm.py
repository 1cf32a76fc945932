"""Batch Renormalization: :func:`batch_renorm` (the formula, defaults and paper),
:func:`renormalize`, and :class:`BatchRenorm`, which is BatchNorm's Function with the
(r, d) correction."""
import numpy as np

from .. import checks
from ..backend import check_float_dtype, get_array_module
from ..tensor import Tensor, as_tensor
from .batch_norm import BatchNorm, IdentityCombine, local_stats


class BatchRenorm(BatchNorm):
    """BN's training transform with xhat replaced by ``xhat * r + d``, r and d constants.

    The forward and backward are :class:`~tinynorm.ops.batch_norm.BatchNorm`'s with
    ``renorm = (r, d)`` (float64, shape (C,)). No second order (stop-gradient r, d are
    not modelled by BN's double backward).
    """

    backward_graph = None

    def forward(self, x, weight, bias, *, mean, invstd, count, r, d):
        self.renorm = (r, d)
        return super().forward(x, weight, bias, mean=mean, invstd=invstd, count=count,
                               batch_stats=True, combine=IdentityCombine())


def renorm_correction(batch_mean, batch_std, running_mean, running_std, rmax, dmax):
    """Ioffe (2017)'s corrections, float64 per channel.

    ``r = clip(sigma_B/sigma, 1/rmax, rmax)``, ``d = clip((mean_B - mu)/sigma, -dmax, dmax)``.
    """
    xp = get_array_module(batch_mean)
    sigma = xp.asarray(running_std, dtype=np.float64)
    r = xp.clip(batch_std / sigma, 1.0 / rmax, rmax)
    d = xp.clip((batch_mean - xp.asarray(running_mean, dtype=np.float64)) / sigma, -dmax, dmax)
    return r, d


def _check_args(input, tensors, name):
    if not isinstance(input, Tensor):
        input = as_tensor(input)
    if input.ndim < 2:
        raise ValueError(f"{name} expects input of shape (N, C, ...), got rank {input.ndim}")
    check_float_dtype(input.data, f"{name} input")
    c = input.shape[1]
    for t, what in tensors:
        checks.param(t, (c,), what, name)
    return input


def _batch_stats(input, eps):
    """(count, mean, sigma_B = sqrt(var_B + eps)) per channel, float64."""
    count, mean, m2 = local_stats(input.data)
    if float(count.min()) <= 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {tuple(input.shape)}")
    xp = get_array_module(mean)
    return count, mean, xp.sqrt(m2 / count + eps)


def _check_limits(rmax, dmax, name):
    if not rmax >= 1:
        raise ValueError(f"{name}: rmax must be >= 1, got {rmax}")
    if not dmax >= 0:
        raise ValueError(f"{name}: dmax must be >= 0, got {dmax}")


def _per_channel(value, c, what, xp):
    """``r`` or ``d`` of :func:`renormalize` as float64 of shape (C,), from a number or (C,)."""
    try:  # None would become NaN
        v = None if value is None else xp.asarray(value.data if isinstance(value, Tensor) else value,
                                                  dtype=np.float64)
    except (TypeError, ValueError):
        v = None
    if v is None or v.dtype.kind != "f":
        raise TypeError(f"renormalize: {what} must be a number or a Tensor of shape ({c},), got "
                        f"{type(value).__name__}")
    if v.shape not in ((), (c,)):
        raise ValueError(f"renormalize: {what} has shape {tuple(v.shape)}, expected a scalar or "
                         f"({c},) for {c} channels")
    return xp.ascontiguousarray(xp.broadcast_to(v, (c,)))


def renormalize(input, r, d, weight=None, bias=None, eps=1e-5):
    """The training transform of Batch Renormalization with given per-channel ``r`` and ``d``.

    ``y = weight * ((x - mean_B)/sqrt(var_B + eps) * r + d) + bias`` with the
    batch statistics of ``input`` (over every axis but 1); ``r`` and ``d``
    are constants (no gradient), as in Ioffe (2017). :func:`batch_renorm`
    computes them from the moving statistics and calls this transform.
    """
    input = _check_args(input, ((weight, "weight"), (bias, "bias")), "renormalize")
    c = input.shape[1]
    xp = get_array_module(input.data)
    r, d = (_per_channel(v, c, what, xp) for v, what in ((r, "r"), (d, "d")))
    count, mean, sigma_b = _batch_stats(input, eps)
    return BatchRenorm.apply(input, weight, bias, mean=mean, invstd=1.0 / sigma_b, count=count,
                             r=r, d=d)


def batch_renorm(input, running_mean, running_std, weight=None, bias=None, training=False,
                 momentum=0.01, eps=1e-5, rmax=1.0, dmax=0.0):
    """Batch Renormalization (Ioffe 2017, "Batch Renormalization: Towards Reducing Minibatch
    Dependence in Batch-Normalized Models", Algorithm 1) over channel axis 1.

    Training: with batch mean ``mean_B`` and ``sigma_B = sqrt(var_B + eps)``
    (biased variance, over every axis but 1)::

        r = clip(sigma_B / running_std, 1/rmax, rmax)
        d = clip((mean_B - running_mean) / running_std, -dmax, dmax)
        y = weight * ((x - mean_B) / sigma_B * r + d) + bias

    r and d are constants in backward (stop-gradient). Then, in place,
    ``running_mean += momentum * (mean_B - running_mean)`` and
    ``running_std += momentum * (sigma_B - running_std)`` (r and d use the
    values from before the update). ``rmax = 1, dmax = 0`` is BatchNorm.

    Eval: ``y = weight * (x - running_mean) / running_std + bias`` (no eps:
    the moving std already includes it).

    ``running_std`` is a moving *standard deviation* (PyTorch's BN keeps a
    variance); both running tensors are required. Defaults: ``training=False``,
    ``momentum=0.01`` (the paper's alpha), ``eps=1e-5``, ``rmax=1.0``, ``dmax=0.0``.
    The op is :class:`BatchRenorm` (BN's Function with r and d) in training and
    :class:`~tinynorm.ops.batch_norm.BatchNorm` with constant statistics in eval.
    """
    input = _check_args(input, ((running_mean, "running_mean"), (running_std, "running_std"),
                                (weight, "weight"), (bias, "bias")), "batch_renorm")
    if running_mean is None or running_std is None:
        raise ValueError("batch_renorm needs running_mean and running_std (the moving statistics "
                         "define r and d in training and normalize in eval)")
    bad = running_std.data <= 0
    if bad.any():
        raise ValueError(f"batch_renorm: running_std must be positive, got {running_std.data[bad][:3]} "
                         f"in channel(s) {get_array_module(bad).nonzero(bad)[0][:3].tolist()}; it is "
                         "a moving standard deviation sqrt(var + eps), so a zero or negative value "
                         "means a corrupt checkpoint (reset_running_stats() sets it to 1)")
    eps = checks.eps(eps, "batch_renorm: eps")
    if not training:
        mean = running_mean.data.astype(np.float64)
        invstd = 1.0 / running_std.data.astype(np.float64)
        return BatchNorm.apply(input, weight, bias, mean=mean, invstd=invstd)
    _check_limits(rmax, dmax, "batch_renorm")
    checks.momentum(momentum, "batch_renorm: momentum")
    count, mean, sigma_b = _batch_stats(input, eps)
    r, d = renorm_correction(mean, sigma_b, running_mean.data, running_std.data, rmax, dmax)
    out = BatchRenorm.apply(input, weight, bias, mean=mean, invstd=1.0 / sigma_b, count=count,
                            r=r, d=d)
    m = float(momentum)
    rm, rs = running_mean.data, running_std.data
    rm[...] = rm + m * (mean - rm)
    rs[...] = rs + m * (sigma_b - rs)
    return out
