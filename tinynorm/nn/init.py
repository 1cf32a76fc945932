"""PyTorch's default initializers (``kaiming_uniform_(a=sqrt(5))`` for Linear and Conv)."""
import math

import numpy as np

from .. import random


def _fan_in(shape):
    fan_in = shape[1] if len(shape) > 1 else shape[0]
    for s in shape[2:]:
        fan_in *= s
    return fan_in


def uniform_(tensor, a=0.0, b=1.0):
    tensor.data[...] = random.default_generator().uniform(a, b, tensor.shape)
    return tensor


def zeros_(tensor):
    tensor.data[...] = 0
    return tensor


def ones_(tensor):
    tensor.data[...] = 1
    return tensor


def constant_(tensor, value):
    tensor.data[...] = value
    return tensor


def kaiming_uniform_(tensor, a=0.0):
    """Uniform(-bound, bound), ``bound = sqrt(6 / ((1 + a^2) * fan_in))`` (He et al. 2015).

    A tensor with no elements (``Linear(0, n)``) is left as it is, as PyTorch does.
    """
    if tensor.data.size == 0:
        return tensor
    gain = math.sqrt(2.0 / (1 + a * a))
    bound = gain * math.sqrt(3.0 / _fan_in(tensor.shape))
    return uniform_(tensor, -bound, bound)


def default_bias_(bias, weight_shape):
    """PyTorch's bias init for Linear/Conv: Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1 / math.sqrt(_fan_in(weight_shape)) if _fan_in(weight_shape) > 0 else 0
    return uniform_(bias, -bound, bound)


def empty(shape, dtype=np.float32):
    return np.empty(shape, dtype=dtype)
