"""tinynorm: a small tape-based autograd on NumPy and Numba with fused normalization kernels."""
import sys as _sys

from . import autograd
from .autograd import enable_grad, is_grad_enabled, no_grad
from .random import manual_seed
from .tensor import Tensor, as_tensor, from_numpy, ones, tensor, zeros
from .factories import flatten
from .device import accelerator, device
from . import functional
from . import nn
from . import optim
from . import gpu
from . import serialization
from . import utils
from .saving import load, save
import numpy as _np

cuda = gpu  # torch's name for it; ``import tinynorm.cuda`` finds the same module object
_sys.modules[__name__ + ".cuda"] = gpu

float32, float64, int64, int32, bool = _np.float32, _np.float64, _np.int64, _np.int32, _np.bool_
float, double, long = _np.float32, _np.float64, _np.int64

__version__ = "0.1.0"

__all__ = ["Tensor", "tensor", "as_tensor", "from_numpy", "zeros", "ones", "no_grad", "enable_grad",
           "is_grad_enabled", "manual_seed", "functional", "nn", "optim", "autograd", "cuda",
           "serialization", "utils", "flatten", "device", "accelerator", "save", "load",
           "float32", "float64", "int64", "int32"]
