"""Root Mean Square Layer Normalization: LayerNorm without the mean, on kernels of its own.

The formula, defaults and paper are :func:`rms_norm`'s docstring; the
backward is :class:`RMSNorm`'s.
"""
import numpy as np

from .. import buffer_pool, checks
from ..autograd import Function
from ..backend import check_float_dtype, get_array_module
from ..kernels import kernels_for
from ..tensor import as_tensor
from .group_norm import float_input


def _rows(x, ndim):
    """(R, D) view of C-contiguous ``x`` with D the product of its last ``ndim`` axes."""
    lead, tail = x.shape[:x.ndim - ndim], x.shape[x.ndim - ndim:]
    return x.reshape(int(np.prod(lead, dtype=np.int64)), int(np.prod(tail, dtype=np.int64)))


class RMSNorm(Function):
    """``y = x * r * weight`` per row of D values (the trailing ``ndim`` axes), ``r = 1/sqrt(mean(x^2) + eps)``.

    Inputs ``(x, weight)``, ``weight`` of the trailing shape or None (1). With
    the sums per row in float64::

        dx      = r * (weight*dy - x * r^2 * sum(weight*dy*x) / D)
        dweight = sum over rows of dy * x * r
    """

    def forward(self, x, weight, *, ndim, eps):
        xp = get_array_module(x)
        x2 = _rows(xp.ascontiguousarray(x), ndim)
        w = None
        if weight is not None:
            w = xp.ascontiguousarray(weight, dtype=x2.dtype).reshape(x2.shape[1])
        y2 = buffer_pool.empty(xp, x2.shape, x2.dtype)
        rstd = xp.empty(x2.shape[0], dtype=np.float64)
        kernels_for("rms_norm", x2).rms_forward(x2, w, eps, y2, rstd)
        self.save_for_backward(x2, w, rstd)
        self.shape = x.shape
        self.weight_shape = None if weight is None else weight.shape
        return y2.reshape(x.shape)

    def backward(self, g):
        xp = get_array_module(g)
        x2, w, rstd = self.saved
        g2 = xp.ascontiguousarray(g).reshape(x2.shape)
        need_dx, need_dw = self.needs_input_grad
        dx2 = buffer_pool.empty(xp, x2.shape, x2.dtype) if need_dx else None
        dw = xp.empty(x2.shape[1], dtype=np.float64) if need_dw else None
        kernels_for("rms_norm", x2).rms_backward(g2, x2, w, rstd, dx2, dw)
        return (dx2.reshape(self.shape) if need_dx else None,
                dw.astype(x2.dtype).reshape(self.weight_shape) if need_dw else None)

    def backward_graph(self, g, inputs):
        """With create_graph: :class:`~tinynorm.ops.norm_double_backward.RMSNormGrad` (its backward is the double backward)."""
        from .norm_double_backward import RMSNormGrad, graph_grads
        return graph_grads(self, g, inputs, RMSNormGrad)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """RMS normalization, ``torch.nn.functional.rms_norm``.

    Over the last ``len(normalized_shape)`` axes (D values per row), which must
    equal ``normalized_shape``, with no mean subtraction and no bias::

        y = x / sqrt(sum(x^2) / D + eps) * weight

    ``weight`` has shape ``normalized_shape`` or is None (1). ``eps=None``
    means the machine epsilon of the input's dtype (``np.finfo(dtype).eps``),
    as in PyTorch; a given eps follows the eps rule. The sum of squares is
    accumulated in float64; an all-zero row gives zeros.

    Root Mean Square Layer Normalization, B. Zhang and R. Sennrich, NeurIPS 2019.
    """
    input = float_input(input, "rms_norm")
    shape = checks.normalized_shape(normalized_shape, "rms_norm: normalized_shape")
    k = len(shape)
    if input.ndim < k or tuple(input.shape[input.ndim - k:]) != shape:
        raise ValueError(f"rms_norm: given normalized_shape={list(shape)}, expected input with "
                         f"shape [*, {', '.join(map(str, shape))}], but got input of size "
                         f"{list(input.shape)}")
    if weight is not None:
        weight = as_tensor(weight)
        check_float_dtype(weight.data, "rms_norm weight")
        if tuple(weight.shape) != shape:
            raise ValueError(f"rms_norm: weight has shape {tuple(weight.shape)}, expected "
                             f"normalized_shape {shape}")
    if eps is None:
        eps = float(np.finfo(input.dtype).eps)
    else:
        eps = checks.eps(eps, "rms_norm: eps")
    return RMSNorm.apply(input, weight, ndim=k, eps=float(eps))
