"""BatchNorm1d/2d/3d modules with PyTorch's arguments, parameters and buffers.

The op is :func:`tinynorm.functional.batch_norm` (:mod:`tinynorm.ops.batch_norm` holds
the formula). ``_NormBase`` and ``_BatchNorm`` are also the base of InstanceNorm, SyncBN,
CmBN, CBN and Batch Renorm.
"""
import numpy as np

from .. import checks, dtypes
from .. import functional as F
from ..tensor import Tensor
from .module import Module, check_channels, register_affine


class _NormBase(Module):
    """PyTorch's ``_NormBase``: per-channel affine parameters and running statistics.

    Shared by the BN family and InstanceNorm, so parameter and buffer names
    (``weight``, ``bias``, ``running_mean``, ``running_var``,
    ``num_batches_tracked``) and their initial values match PyTorch's.
    ``_spread`` names the second running buffer (Batch Renorm keeps ``running_std``).
    """

    _spread = "running_var"

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        dtype = dtypes.parameter(dtype, type(self).__name__)
        super().__init__()
        name = type(self).__name__
        checks.integer(num_features, f"{name}: num_features", 1)
        checks.eps(eps, f"{name}: eps")
        self._check_momentum(momentum, name)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        register_affine(self, num_features, dtype, affine, affine)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
            self.register_buffer(self._spread, Tensor(np.ones(num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer(self._spread, None)
            self.register_buffer("num_batches_tracked", None)

    @staticmethod
    def _check_momentum(momentum, name):
        """``None`` is allowed: a cumulative average (PyTorch's)."""
        if momentum is not None:
            checks.momentum(momentum, f"{name}: momentum")

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            getattr(self, self._spread).data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    _expected_ranks = ()

    def _check_input(self, x):
        check_channels(self, x, self._expected_ranks)

    def _momentum_factor(self):
        """PyTorch's exponential_average_factor: momentum, or 1/num_batches_tracked if None."""
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data[...] += 1
            if self.momentum is None:
                return 1.0 / float(self.num_batches_tracked.data)
        return 0.0 if self.momentum is None else self.momentum

    def _combine(self):
        return None

    def forward(self, x):
        self._check_input(x)
        factor = self._momentum_factor()
        use_batch = self.training or not self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if (not self.training or self.track_running_stats) else None,
            self.running_var if (not self.training or self.track_running_stats) else None,
            self.weight, self.bias, use_batch, factor, self.eps, combine=self._combine())


class BatchNorm1d(_BatchNorm):
    """BN over (N, C) or (N, C, L) input."""
    _expected_ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """BN over (N, C, H, W) input."""
    _expected_ranks = (4,)


class BatchNorm3d(_BatchNorm):
    """BN over (N, C, D, H, W) input."""
    _expected_ranks = (5,)
