"""Local Response Normalization across channels, with PyTorch's semantics.

The formula, defaults and paper are :func:`local_response_norm`'s docstring;
the backward is :class:`LocalResponseNorm`'s.
"""
from .. import buffer_pool, checks
from ..autograd import Function
from ..backend import check_float_dtype, get_array_module
from ..kernels import kernels_for
from ..tensor import Tensor, as_tensor
from .batch_norm import as_channels_3d

FAST_BETAS = (0.75, 0.5)


class LocalResponseNorm(Function):
    """LRN over (N, C, *) with a sliding channel window; ``d_c`` and ``b_c`` as in :func:`local_response_norm`.

    Backward, ``window(c)`` the channels that ``c``'s sum covers::

        da_j = db_j * d_j^(-beta)
               - 2*alpha*beta/n * a_j * sum_{c: j in window(c)} db_c a_c d_c^(-beta-1)

    The scale d^-beta is kept from the forward pass only when beta has no fast
    path in the kernels (otherwise recomputing it is cheaper than storing it).
    """

    def forward(self, x, *, size, alpha, beta, k):
        xp = get_array_module(x)
        x3 = as_channels_3d(x)
        y3 = buffer_pool.empty(xp, x3.shape, x3.dtype)
        save = beta not in FAST_BETAS and self.needs_input_grad[0]
        scale3 = buffer_pool.empty(xp, x3.shape, x3.dtype) if save else None
        kernels_for("lrn", x3).lrn_forward(x3, size, alpha, beta, k, y3, scale3)
        self.save_for_backward(x3, scale3)
        self.shape, self.params = x.shape, (size, alpha, beta, k)
        return y3.reshape(x.shape)

    def backward(self, g):
        xp = get_array_module(g)
        x3, scale3 = self.saved
        g3 = as_channels_3d(g)
        dx3 = buffer_pool.empty(xp, x3.shape, x3.dtype)
        kernels_for("lrn", x3).lrn_backward(g3, x3, *self.params, scale3, dx3)
        return dx3.reshape(self.shape)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Local Response Normalization across channels, ``torch.nn.functional.local_response_norm``.

    For ``input`` of shape (N, C, *) (rank >= 3) and n = ``size``::

        d_c = k + alpha/n * sum_{c'=c-n//2}^{c+(n-1)//2} a_{c'}^2
        b_c = a_c * d_c^(-beta)

    with channels outside [0, C) counted as zeros and the divisor always n,
    exactly as PyTorch computes it (an average pool of a^2 over a
    zero-padded channel window). ``size`` is required (a positive integer);
    ``alpha=1e-4``, ``beta=0.75``, ``k=1.0``, finite numbers of any sign. The
    kernels slide a float64 running sum over the channels, with fast paths for
    beta = 0.75 and beta = 0.5.

    AlexNet (Krizhevsky, Sutskever & Hinton 2012, section 3.3) used
    k = 2, n = 5, alpha = 1e-4, beta = 0.75 with alpha *not* divided by n:
    in PyTorch's (and this function's) terms that is ``alpha = 1e-4 * n``, i.e.
    ``local_response_norm(x, 5, alpha=5e-4, beta=0.75, k=2.0)``.

    ImageNet Classification with Deep Convolutional Neural Networks,
    A. Krizhevsky, I. Sutskever and G. E. Hinton, NeurIPS 2012.
    """
    if not isinstance(input, Tensor):
        input = as_tensor(input)
    if input.ndim < 3:
        raise ValueError(f"local_response_norm: expected 3D or higher dimensionality input "
                         f"(N, C, *), got {input.ndim}D input of shape {tuple(input.shape)}")
    check_float_dtype(input.data, "local_response_norm input")
    size, alpha, beta, k = checks.lrn_args(size, alpha, beta, k)
    return LocalResponseNorm.apply(input, size=size, alpha=alpha, beta=beta, k=k)
