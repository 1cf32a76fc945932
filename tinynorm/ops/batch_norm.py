"""Batch Normalization: :func:`batch_norm` (the formula, defaults and paper) and its
Function :class:`BatchNorm` (the stats -> combine -> elementwise split, backward, and the
(r, d) correction of Batch Renormalization)."""
import numpy as np

from .. import buffer_pool, checks
from ..autograd import Function
from ..backend import check_float_dtype, get_array_module
from ..kernels import kernels_for
from ..tensor import Tensor, as_tensor


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
    """The combine step of plain BN: local statistics are the batch statistics.

    A combine object has ``stats(count, mean, m2) -> (count, mean, m2)`` (forward) and
    ``grad_sums(sum_dy, sum_dyxmu) -> (sum_dy, sum_dyxmu)`` (backward); it is the public
    hook of :func:`batch_norm` that nn modules pass as ``combine=``.
    """

    def stats(self, count, mean, m2):
        return count, mean, m2

    def grad_sums(self, sum_dy, sum_dy_xmu):
        return sum_dy, sum_dy_xmu


class BatchNorm(Function):
    """BN's elementwise pass with given statistics, split as PyTorch's SyncBatchNorm::

        local stats   count, mean, M2 per channel over (N, *spatial)        (kernel)
        combine       ``combine.stats``: IdentityCombine for BN; SyncCombine,
                      CrossMiniBatchCombine, CrossIterationCombine for the variants
        elementwise   y = (x - mean) * scale + shift,  scale = weight*invstd,  shift = bias

    Backward with batch statistics (``combine.grad_sums`` totals the reductions)::

        sum_dy = sum dy,   sum_dyxmu = sum dy * (x - mean)                    (kernel)
        dx      = weight*invstd * (dy - sum_dy/m - (x - mean) * invstd^2 * sum_dyxmu/m)
        dweight = invstd * sum_dyxmu = sum dy * xhat,   dbias = sum_dy

    With constant statistics (``batch_stats`` False: running statistics in eval)
    ``dx = weight*invstd*dy``. ``weight`` and ``bias`` may be None.

    ``renorm = (r, d)`` (set by :class:`~tinynorm.ops.batch_renorm.BatchRenorm`)
    replaces xhat by ``xhat * r + d`` with r, d constants (Ioffe 2017): then
    ``scale = weight*r*invstd``, ``shift = bias + weight*d``, dx is the above with
    ``weight*r`` for weight, and ``dweight = sum dy * (xhat*r + d)``.
    """

    renorm = None

    def forward(self, x, weight, bias, *, mean, invstd, count=None, batch_stats=False,
                combine=None):
        xp = get_array_module(x)
        x3 = as_channels_3d(x)
        if self.renorm is None:
            gamma = weight
            shift = bias.astype(np.float64) if bias is not None else xp.zeros(x3.shape[1], np.float64)
        else:
            r, d = self.renorm
            gamma = r if weight is None else weight * r
            shift = d if weight is None else weight * d
            shift = shift if bias is None else bias + shift
        scale = invstd * gamma if gamma is not None else invstd
        y3 = buffer_pool.empty(xp, x3.shape, x3.dtype)
        kernels_for("batch_norm", x3).bn_forward_apply(
            x3, mean, xp.ascontiguousarray(scale, dtype=np.float64),
            xp.ascontiguousarray(shift, dtype=np.float64), y3)
        self.save_for_backward(x3, gamma)
        self.mean, self.invstd, self.count = mean, invstd, count
        self.batch_stats, self.combine, self.shape = batch_stats, combine, x.shape
        return y3.reshape(x.shape)

    def backward(self, g):
        xp = get_array_module(g)
        x3, gamma = self.saved
        k = kernels_for("batch_norm", x3)
        g3 = as_channels_3d(g)
        c = x3.shape[1]
        sum_dy = xp.empty(c, dtype=np.float64)
        sum_dy_xmu = xp.empty(c, dtype=np.float64)
        k.bn_backward_reduce(g3, x3, self.mean, sum_dy, sum_dy_xmu)
        invstd = self.invstd
        dx = dweight = dbias = None
        if self.needs_input_grad[0]:
            gcoef = invstd * gamma if gamma is not None else invstd
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
            dx = dx3.reshape(self.shape)
        if self.needs_input_grad[1]:
            dweight = sum_dy_xmu * invstd
            if self.renorm is not None:
                r, d = self.renorm
                dweight = dweight * r + d * sum_dy
            dweight = dweight.astype(x3.dtype)
        if self.needs_input_grad[2]:
            dbias = sum_dy.astype(x3.dtype)
        return dx, dweight, dbias

    def backward_graph(self, g, inputs):
        """With create_graph: :class:`~tinynorm.ops.norm_double_backward.BatchNormGrad` (its backward is the double backward)."""
        if self.batch_stats and not isinstance(self.combine, IdentityCombine):
            self.second_order_detail = f"statistics combined by {type(self.combine).__name__}"
            return NotImplemented
        from .norm_double_backward import BatchNormGrad, graph_grads
        return graph_grads(self, g, inputs, BatchNormGrad)


def _more_than_one_value(input):
    return ValueError(
        f"Expected more than 1 value per channel when training, got input size {tuple(input.shape)}")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, combine=None):
    """Batch Normalization (Ioffe & Szegedy 2015, "Batch Normalization: Accelerating Deep
    Network Training by Reducing Internal Covariate Shift"), ``torch.nn.functional.batch_norm``.

    Per channel (axis 1) of ``input`` (N, C, *spatial), over its m = N * prod(spatial)
    values::

        mean = sum x / m,   var = sum (x - mean)^2 / m                      (biased)
        y    = weight * (x - mean) / sqrt(var + eps) + bias

    with the batch's statistics when ``training`` and the running statistics
    otherwise (both required then, as in PyTorch). Training with running buffers
    updates them in place with the *unbiased* variance:
    ``running = (1 - momentum) * running + momentum * batch``. Defaults:
    ``training=False``, ``momentum=0.1``, ``eps=1e-5``; weight and bias absent.
    ``combine`` (default :class:`IdentityCombine`) is where synchronized,
    cross-iteration and cross-mini-batch BN merge statistics (see :class:`BatchNorm`).
    """
    if not isinstance(input, Tensor):
        input = as_tensor(input)
    if input.ndim < 2:
        raise ValueError(f"batch_norm expects input of shape (N, C, ...), got rank {input.ndim}: "
                         "a rank-1 input has no channel axis (PyTorch fails on it too); add one "
                         "with x.reshape(-1, 1) or x.reshape(1, -1)")
    check_float_dtype(input.data, "batch_norm input")
    eps = checks.eps(eps, "batch_norm: eps")
    if training and running_mean is not None:
        checks.momentum(momentum, "batch_norm: momentum")
    if not training:
        for t, what in ((running_mean, "running_mean"), (running_var, "running_var")):
            if t is None:
                raise RuntimeError(f"batch_norm: {what} must be defined in evaluation mode "
                                   "(training=False); pass training=True to use batch statistics")
    c = input.shape[1]
    for t, what in ((running_mean, "running_mean"), (running_var, "running_var"),
                    (weight, "weight"), (bias, "bias")):
        checks.param(t, (c,), what, "batch_norm")
    xp = get_array_module(input.data)
    use_batch = bool(training)
    combine = combine or IdentityCombine()
    if use_batch:
        identity = isinstance(combine, IdentityCombine)
        if identity and input.data.size <= c:
            raise _more_than_one_value(input)
        count, mean, m2 = combine.stats(*local_stats(input.data))
        if not identity and float(count.min()) <= 1:
            raise _more_than_one_value(input)
        var = m2 / count
        if running_mean is not None and running_var is not None:
            m = float(momentum)
            rm, rv = running_mean.data, running_var.data
            rm[...] = (1 - m) * rm + m * mean
            rv[...] = (1 - m) * rv + m * (m2 / (count - 1))
    else:
        count = None
        mean = running_mean.data.astype(np.float64)
        var = running_var.data.astype(np.float64)
    invstd = 1.0 / xp.sqrt(var + eps)
    return BatchNorm.apply(input, weight, bias, mean=mean, invstd=invstd, count=count,
                           batch_stats=use_batch, combine=combine)
