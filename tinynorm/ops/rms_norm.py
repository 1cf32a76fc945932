"""Root Mean Square Layer Normalization (Zhang & Sennrich 2019).

Over the trailing ``normalized_shape`` axes (D values per row)::

    r  = 1 / sqrt(mean(x^2) + eps)
    y  = x * r * weight
    dx = r * (weight*dy - x * r^2 * mean(weight*dy*x))
    dweight = sum over rows of dy * x * r

Unlike LayerNorm there is no mean subtraction and no bias.
"""
import numpy as np

from .. import buffer_pool
from .. import checks
from ..autograd import Function
from ..backend import check_float_dtype, get_array_module
from ..kernels import kernels_for
from ..tensor import Tensor, as_tensor


def _rows(x, ndim):
    """(R, D) view of C-contiguous ``x`` with D the product of its last ``ndim`` axes."""
    lead, tail = x.shape[:x.ndim - ndim], x.shape[x.ndim - ndim:]
    return x.reshape(int(np.prod(lead, dtype=np.int64)), int(np.prod(tail, dtype=np.int64)))


class RMSNorm(Function):
    """y = x * rstd * weight per row of the trailing ``ndim`` axes; backward as in the module docstring."""

    def forward(self, x, *affine, ndim, eps, has_weight):
        xp = get_array_module(x)
        x2 = _rows(xp.ascontiguousarray(x), ndim)
        w = None
        if has_weight:
            w = xp.ascontiguousarray(affine[0], dtype=x2.dtype).reshape(x2.shape[1])
        y2 = buffer_pool.empty(xp, x2.shape, x2.dtype)
        rstd = xp.empty(x2.shape[0], dtype=np.float64)
        kernels_for("rms_norm", x2).rms_forward(x2, w, eps, y2, rstd)
        self.save_for_backward(x2, w, rstd)
        self.shape, self.has_weight = x.shape, has_weight
        self.weight_shape = affine[0].shape if has_weight else None
        return y2.reshape(x.shape)

    def backward(self, g):
        xp = get_array_module(g)
        x2, w, rstd = self.saved
        g2 = xp.ascontiguousarray(g).reshape(x2.shape)
        need_dx = self.needs_input_grad[0]
        need_dw = self.has_weight and self.needs_input_grad[1]
        dx2 = buffer_pool.empty(xp, x2.shape, x2.dtype) if need_dx else None
        dw = xp.empty(x2.shape[1], dtype=np.float64) if need_dw else None
        kernels_for("rms_norm", x2).rms_backward(g2, x2, w, rstd, dx2, dw)
        grads = [dx2.reshape(self.shape) if need_dx else None]
        if self.has_weight:
            grads.append(dw.astype(x2.dtype).reshape(self.weight_shape) if need_dw else None)
        return tuple(grads)

    def backward_graph(self, g, inputs):
        """With create_graph: :class:`~tinynorm.ops.norm_double_backward.RMSNormGrad` (its backward is the double backward)."""
        from .norm_double_backward import RMSNormGrad, graph_grads
        return graph_grads(self, g, inputs, RMSNormGrad)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """RMS normalization (Zhang & Sennrich 2019), ``torch.nn.functional.rms_norm``.

    ``y = x / sqrt(mean(x^2) + eps) * weight``, the mean taken over the last
    ``len(normalized_shape)`` axes, which must equal ``normalized_shape``;
    ``weight`` (optional) has shape ``normalized_shape``. ``eps=None`` means
    the machine epsilon of the input's dtype (``np.finfo(dtype).eps``), as in
    PyTorch. The sum of squares is accumulated in float64.

    Root Mean Square Layer Normalization, B. Zhang and R. Sennrich, NeurIPS 2019.
    """
    if not isinstance(input, Tensor):
        input = as_tensor(input)
    check_float_dtype(input.data, "rms_norm input")
    shape = checks.normalized_shape(normalized_shape, "rms_norm: normalized_shape")
    k = len(shape)
    if input.ndim < k or tuple(input.shape[input.ndim - k:]) != shape:
        raise ValueError(f"rms_norm: given normalized_shape={list(shape)}, expected input with "
                         f"shape [*, {', '.join(map(str, shape))}], but got input of size "
                         f"{list(input.shape)}")
    if weight is not None:
        if not isinstance(weight, Tensor):
            weight = as_tensor(weight)
        check_float_dtype(weight.data, "rms_norm weight")
        if tuple(weight.shape) != shape:
            raise ValueError(f"rms_norm: weight has shape {tuple(weight.shape)}, expected "
                             f"normalized_shape {shape}")
    if eps is None:
        eps = float(np.finfo(input.dtype).eps)
    else:
        eps = checks.eps(eps, "rms_norm: eps")
    affine = (weight,) if weight is not None else ()
    return RMSNorm.apply(input, *affine, ndim=k, eps=float(eps), has_weight=weight is not None)
