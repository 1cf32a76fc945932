"""RMSNorm module with PyTorch's arguments and parameter name (``weight``).

See :func:`tinynorm.ops.rms_norm.rms_norm` for the formula (Zhang & Sennrich 2019).
"""
import numpy as np

from .. import checks, dtypes
from ..ops.rms_norm import rms_norm
from .module import Module, Parameter


class RMSNorm(Module):
    """``y = x / sqrt(mean(x^2) + eps) * weight`` over the trailing ``normalized_shape`` axes.

    ``eps=None`` uses the input dtype's machine epsilon; ``weight`` starts at ones.
    """

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, dtype=np.float32):
        dtype = dtypes.parameter(dtype, "RMSNorm")
        super().__init__()
        self.normalized_shape = checks.normalized_shape(normalized_shape, "RMSNorm: normalized_shape")
        if eps is not None:
            checks.eps(eps, "RMSNorm: eps")
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype))
        else:
            self.register_parameter("weight", None)

    def reset_parameters(self):
        if self.weight is not None:
            self.weight.data[...] = 1

    def forward(self, x):
        return rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
