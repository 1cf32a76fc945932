"""Linear, Conv2d, pooling, activation, dropout and reshaping layers (PyTorch's names and defaults)."""
import math

import numpy as np

from .. import checks, dtypes
from .. import functional as F
from . import init
from .containers import _index
from .module import Module, Parameter


def _default_parameters(module, weight_shape, bias, dtype):
    """PyTorch's initial weight (Kaiming uniform, a = sqrt(5)) and bias (or None) of a Linear or Conv."""
    module.weight = Parameter(np.empty(weight_shape, dtype=dtype))
    init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    if bias:
        module.bias = Parameter(np.empty(weight_shape[0], dtype=dtype))
        init.default_bias_(module.bias, module.weight.shape)
    else:
        module.register_parameter("bias", None)


class Linear(Module):
    """``y = x W^T + b``; weight (out_features, in_features)."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        dtype = dtypes.parameter(dtype, "Linear")
        super().__init__()
        checks.integer(in_features, "Linear: in_features", 0)
        checks.integer(out_features, "Linear: out_features", 0)
        self.in_features, self.out_features = in_features, out_features
        _default_parameters(self, (out_features, in_features), bias, dtype)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, dtype=np.float32):
        dtype = dtypes.parameter(dtype, "Conv2d")
        super().__init__()
        checks.integer(in_channels, "Conv2d: in_channels", 1)
        checks.integer(out_channels, "Conv2d: out_channels", 1)
        checks.integer(groups, "Conv2d: groups", 1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels {in_channels} and out_channels {out_channels} "
                             f"must be divisible by groups {groups}")
        kh, kw = checks.ints(kernel_size, 2, "Conv2d: kernel_size", 1)
        F.conv_geometry((kh, kw), stride, padding, dilation)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), stride, padding
        self.dilation, self.groups = dilation, groups
        _default_parameters(self, (out_channels, in_channels // groups, kh, kw), bias, dtype)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")


class _Pool2d(Module):
    """The window arguments both pools share, checked at construction as at call time."""

    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode, name):
        super().__init__()
        F.pool_geometry(kernel_size, stride, padding, dilation, name)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode = ceil_mode

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                 return_indices=False):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode, "MaxPool2d")
        self.dilation, self.return_indices = dilation, return_indices

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)


class AvgPool2d(_Pool2d):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode, "AvgPool2d")
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Dropout(Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.p = checks.number(p, "dropout probability", 0.0, 1.0)

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Dropout2d(Dropout):
    """Zero whole channels (``torch.nn.Dropout2d``)."""

    def forward(self, x):
        return F.dropout2d(x, self.p, self.training)


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


class Identity(Module):
    def forward(self, x):
        return x


class Sequential(Module):
    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is a {type(m).__name__}, not a Module")
            self.add_module(str(i), m)

    def __getitem__(self, i):
        """Item ``i``, or a Sequential of a slice of them under their own keys (as torch)."""
        if isinstance(i, slice):
            out = Sequential()
            for key, m in list(self._modules.items())[i]:
                out.add_module(key, m)
            return out
        return self._modules[_index(i, len(self), "Sequential")]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class CrossEntropyLoss(Module):
    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"CrossEntropyLoss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.weight = weight
        self.ignore_index = checks.integer(ignore_index, "CrossEntropyLoss: ignore_index")
        self.reduction = reduction
        self.label_smoothing = checks.number(label_smoothing, "CrossEntropyLoss: label_smoothing", 0.0, 1.0)

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                               self.label_smoothing)
