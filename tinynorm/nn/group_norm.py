"""GroupNorm, LayerNorm and InstanceNorm1d/2d/3d with PyTorch's arguments, parameters and buffers.

The formulas, defaults and papers are the functional ops' docstrings:
:func:`tinynorm.ops.group_norm.group_norm`, :func:`tinynorm.ops.layer_norm.layer_norm`,
:func:`tinynorm.ops.instance_norm.instance_norm`. InstanceNorm takes batched
input only: (N, C, L), (N, C, H, W), (N, C, D, H, W); PyTorch also accepts one
unbatched sample, which here must be given a leading batch axis of 1.
"""
import warnings

import numpy as np

from .. import checks, dtypes
from .. import functional as F
from .batch_norm import _NormBase
from .module import Module, register_affine, reset_affine


class GroupNorm(Module):
    """Group Normalization over (N, C, *) input: ``num_channels`` split into ``num_groups`` (``F.group_norm``)."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32):
        dtype = dtypes.parameter(dtype, "GroupNorm")
        super().__init__()
        checks.integer(num_groups, "GroupNorm: num_groups", 1)
        checks.integer(num_channels, "GroupNorm: num_channels", 1)
        checks.eps(eps, "GroupNorm: eps")
        if num_channels % num_groups != 0:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = (
            num_groups, num_channels, eps, affine)
        register_affine(self, num_channels, dtype, affine, affine)

    def reset_parameters(self):
        reset_affine(self)

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}) expects input of "
                             f"shape (N, {self.num_channels}, ...), got {tuple(x.shape)}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class LayerNorm(Module):
    """Layer Normalization over the trailing ``normalized_shape`` axes (``F.layer_norm``)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=np.float32):
        dtype = dtypes.parameter(dtype, "LayerNorm")
        super().__init__()
        self.normalized_shape = checks.normalized_shape(normalized_shape, "LayerNorm: normalized_shape")
        checks.eps(eps, "LayerNorm: eps")
        self.eps, self.elementwise_affine = eps, elementwise_affine
        register_affine(self, self.normalized_shape, dtype, elementwise_affine,
                        elementwise_affine and bias)

    def reset_parameters(self):
        reset_affine(self)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class _InstanceNorm(_NormBase):
    """Instance Normalization (``F.instance_norm``) with PyTorch's defaults and buffers."""

    _rank = 0

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, dtype=np.float32):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)

    def forward(self, x):
        name = type(self).__name__
        if x.ndim != self._rank:
            raise ValueError(f"{name} expected {self._rank}D input (batched; unbatched input "
                             f"needs a leading batch axis of 1), got {x.ndim}D input of shape "
                             f"{tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            if self.affine or self.track_running_stats:
                raise ValueError(f"{name}({self.num_features}) got input with {x.shape[1]} "
                                 f"channels (shape {tuple(x.shape)})")
            warnings.warn(f"{name}: input's size at dim=1 ({x.shape[1]}) does not match "
                          f"num_features ({self.num_features}), which is unused because "
                          "affine=False", stacklevel=2)
        use_input_stats = self.training or not self.track_running_stats
        return F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                             use_input_stats, 0.0 if self.momentum is None else self.momentum,
                             self.eps)


class InstanceNorm1d(_InstanceNorm):
    """Instance Normalization over (N, C, L) input."""
    _rank = 3


class InstanceNorm2d(_InstanceNorm):
    """Instance Normalization over (N, C, H, W) input."""
    _rank = 4


class InstanceNorm3d(_InstanceNorm):
    """Instance Normalization over (N, C, D, H, W) input."""
    _rank = 5
