"""Batch Normalization (Ioffe & Szegedy 2015) split as PyTorch's SyncBatchNorm.

Forward, training::

    local stats      count, mean, M2 per channel over (N, *spatial)   (kernel)
    combine          identity here; cross-worker / cross-iteration later
    elementwise      y = gamma * (x - mean) * invstd + beta             (kernel)

Backward::

    local reductions sum(dy), sum(dy * (x - mean))                       (kernel)
    combine          identity here; all-reduce for synchronized BN
    elementwise      dx = gamma*invstd * (dy - sum(dy)/m - (x-mean)*invstd^2 * sum(dy*(x-mean))/m)
    parameters       dgamma = sum(dy * xhat), dbeta = sum(dy)            (local)

With eval statistics the mean and invstd are constants: ``dx = gamma*invstd*dy``.
``invstd = 1/sqrt(var + eps)`` with the biased batch variance ``var = M2/m``.
"""
import numpy as np

from .. import buffer_pool
from ..autograd import Function
from ..backend import get_array_module
from ..kernels import kernels_for


def as_channels_3d(x):
    """View ``x`` of shape (N, C, *spatial) as a C-contiguous (N, C, S) array."""
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    s = 1
    for d in x.shape[2:]:
        s *= d
    return x.reshape(x.shape[0], x.shape[1], s)


def local_stats(x):
    """Per-channel (count, mean, M2) in float64 over every axis but 1."""
    xp = get_array_module(x)
    x3 = as_channels_3d(x)
    c = x3.shape[1]
    count = xp.empty(c, dtype=np.float64)
    mean = xp.empty(c, dtype=np.float64)
    m2 = xp.empty(c, dtype=np.float64)
    kernels_for("batch_norm", x3).bn_stats(x3, count, mean, m2)
    return count, mean, m2


def chan_merge(counts, means, m2s):
    """Merge per-part (count, mean, M2) rows into one (Chan, Golub & LeVeque 1979).

    ``counts``, ``means``, ``m2s`` have shape (parts, C); empty parts (count 0)
    contribute nothing. Chan's pairwise update applied part by part telescopes
    to ``n = sum n_i``, ``mean = sum n_i mean_i / n`` and
    ``M2 = sum M2_i + sum n_i (mean_i - mean)^2``, which is computed here in
    one vectorized step (deviations from the merged mean, so no cancellation).
    Returns (count, mean, M2) of shape (C,).
    """
    xp = get_array_module(means)
    counts, means, m2s = xp.asarray(counts), xp.asarray(means), xp.asarray(m2s)
    n = counts.sum(axis=0)
    mean = (counts * means).sum(axis=0) / xp.where(n > 0, n, 1)
    dev = means - mean
    m2 = m2s.sum(axis=0) + (counts * dev * dev).sum(axis=0)
    return n, mean, m2


class IdentityCombine:
    """The combine step of plain BN: local statistics are the batch statistics."""

    def stats(self, count, mean, m2):
        return count, mean, m2

    def grad_sums(self, sum_dy, sum_dy_xmu):
        return sum_dy, sum_dy_xmu


class BatchNorm(Function):
    """Elementwise normalize with given statistics; backward as in the module docstring.

    ``batch_stats`` says whether ``mean``/``invstd`` came from this batch (so they
    carry gradient) or are constants (running statistics in eval mode).
    """

    def forward(self, x, *affine, mean, invstd, count, batch_stats, combine,
                has_weight, has_bias):
        xp = get_array_module(x)
        weight = affine[0] if has_weight else None
        bias = affine[-1] if has_bias else None
        x3 = as_channels_3d(x)
        c = x3.shape[1]
        scale = invstd * weight if weight is not None else invstd
        shift = bias.astype(np.float64) if bias is not None else xp.zeros(c, dtype=np.float64)
        y3 = buffer_pool.empty(xp, x3.shape, x3.dtype)
        kernels_for("batch_norm", x3).bn_forward_apply(
            x3, mean, xp.ascontiguousarray(scale, dtype=np.float64), shift, y3)
        self.save_for_backward(x3, weight)
        self.mean, self.invstd, self.count = mean, invstd, count
        self.batch_stats, self.combine = batch_stats, combine
        self.has_weight, self.has_bias, self.shape = has_weight, has_bias, x.shape
        return y3.reshape(x.shape)

    def backward(self, g):
        xp = get_array_module(g)
        x3, weight = self.saved
        k = kernels_for("batch_norm", x3)
        g3 = as_channels_3d(g)
        c = x3.shape[1]
        sum_dy = xp.empty(c, dtype=np.float64)
        sum_dy_xmu = xp.empty(c, dtype=np.float64)
        k.bn_backward_reduce(g3, x3, self.mean, sum_dy, sum_dy_xmu)
        invstd = self.invstd
        grads = [None]
        if self.needs_input_grad[0]:
            gcoef = invstd * weight if weight is not None else invstd
            if self.batch_stats:
                tot_dy, tot_dy_xmu = self.combine.grad_sums(sum_dy, sum_dy_xmu)
                mean_dy = tot_dy / self.count
                kcoef = tot_dy_xmu / self.count * invstd * invstd
            else:
                mean_dy = xp.zeros(c, dtype=np.float64)
                kcoef = mean_dy
            dx3 = buffer_pool.empty(xp, x3.shape, x3.dtype)
            k.bn_backward_apply(g3, x3, self.mean, mean_dy, kcoef,
                                xp.ascontiguousarray(gcoef, dtype=np.float64), dx3)
            grads[0] = dx3.reshape(self.shape)
        dtype = x3.dtype
        if self.has_weight:
            grads.append((sum_dy_xmu * invstd).astype(dtype))
        if self.has_bias:
            grads.append(sum_dy.astype(dtype))
        return tuple(grads)

    def backward_graph(self, g, inputs):
        """With create_graph: :class:`~tinynorm.ops.norm_double_backward.BatchNormGrad` (its backward is the double backward)."""
        if self.batch_stats and not isinstance(self.combine, IdentityCombine):
            self.second_order_detail = f"statistics combined by {type(self.combine).__name__}"
            return NotImplemented
        from .norm_double_backward import BatchNormGrad, graph_grads
        return graph_grads(self, g, inputs, BatchNormGrad)
