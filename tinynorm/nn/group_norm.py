"""GroupNorm, LayerNorm and InstanceNorm1d/2d/3d with PyTorch's arguments, parameters and buffers.

See :mod:`tinynorm.ops.group_norm` for the formulas (Wu & He 2018; Ba et al.
2016; Ulyanov et al. 2016). InstanceNorm takes batched input only:
(N, C, L), (N, C, H, W), (N, C, D, H, W); PyTorch also accepts one unbatched
sample, which here must be given a leading batch axis of 1.
"""
import numbers
import warnings

import numpy as np

from .. import checks, dtypes
from ..ops.group_norm import group_norm, instance_norm, layer_norm
from .batch_norm import _NormBase
from .module import Module, Parameter


class GroupNorm(Module):
    """Group Normalization over (N, C, *) input: ``num_channels`` split into ``num_groups``."""

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
        if affine:
            self.weight = Parameter(np.ones(num_channels, dtype=dtype))
            self.bias = Parameter(np.zeros(num_channels, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self):
        if self.affine:
            self.weight.data[...] = 1
            self.bias.data[...] = 0

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}) expects input of "
                             f"shape (N, {self.num_channels}, ...), got {tuple(x.shape)}")
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class LayerNorm(Module):
    """Layer Normalization over the trailing ``normalized_shape`` axes."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=np.float32):
        dtype = dtypes.parameter(dtype, "LayerNorm")
        super().__init__()
        self.normalized_shape = checks.normalized_shape(normalized_shape, "LayerNorm: normalized_shape")
        checks.eps(eps, "LayerNorm: eps")
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self):
        if self.weight is not None:
            self.weight.data[...] = 1
        if self.bias is not None:
            self.bias.data[...] = 0

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class _InstanceNorm(_NormBase):
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
        return instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
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
