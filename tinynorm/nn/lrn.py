"""LocalResponseNorm module with PyTorch's arguments (no parameters, no buffers).

See :func:`tinynorm.ops.lrn.local_response_norm` for the formula and for the
AlexNet setting (Krizhevsky et al. 2012: ``alpha = 1e-4 * size``, ``k = 2``).
"""
from ..ops.lrn import check_lrn_args, local_response_norm
from .module import Module


class LocalResponseNorm(Module):
    """``b_c = a_c / (k + alpha/size * sum of a^2 over a window of size channels)^beta``."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        check_lrn_args(size, alpha, beta, k)
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
