"""RMSNorm module with PyTorch's arguments and parameter name (``weight``).

The formula, defaults and paper are :func:`tinynorm.ops.rms_norm.rms_norm`'s docstring.
"""
import numpy as np

from .. import checks, dtypes
from .. import functional as F
from .module import Module, Parameter, reset_affine


class RMSNorm(Module):
    """RMS normalization (``F.rms_norm``) over the trailing ``normalized_shape`` axes; ``weight`` starts at ones."""

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
        reset_affine(self)

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
