"""LocalResponseNorm module with PyTorch's arguments (no parameters, no buffers).

The formula, defaults and paper, and the AlexNet setting, are
:func:`tinynorm.ops.lrn.local_response_norm`'s docstring.
"""
from .. import checks
from .. import functional as F
from .module import Module


class LocalResponseNorm(Module):
    """Local Response Normalization across channels (``F.local_response_norm``)."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        checks.lrn_args(size, alpha, beta, k)
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
