"""Weight Normalization as one fused op, and the norm it divides by.

The formula, defaults and paper are :func:`weight_norm`'s docstring; the
kernels and backward are :class:`WeightNorm`'s, the double backward
:mod:`tinynorm.ops.weight_norm_grad`'s.
"""
import numpy as np

from .. import buffer_pool, dims
from ..autograd import Function
from ..backend import check_float_dtype, get_array_module
from ..kernels import kernels_for
from ..tensor import Tensor, as_tensor


def _canonical_dim(dim, ndim, what):
    return None if dim is None else dims.dim(dim, ndim, what)


def norm_shape(shape, dim):
    """Shape of the norms (and of ``g``): ``shape`` with every axis but ``dim`` set to 1; () for dim=None."""
    if dim is None:
        return ()
    return tuple(s if i == dim else 1 for i, s in enumerate(shape))


def as_dim_3d(v, dim):
    """View ``v`` as a C-contiguous (A, D, B) array around axis ``dim`` (canonical, or None)."""
    xp = get_array_module(v)
    v = xp.ascontiguousarray(v)
    if dim is None:
        return v.reshape(1, 1, v.size)
    a = b = 1
    for s in v.shape[:dim]:
        a *= s
    for s in v.shape[dim + 1:]:
        b *= s
    return v.reshape(a, v.shape[dim], b)


def _sum_sq(v3):
    xp = get_array_module(v3)
    out = xp.empty(v3.shape[1], dtype=np.float64)
    kernels_for("weight_norm", v3).wn_sum_sq(v3, out)
    return out


class WeightNorm(Function):
    """``w = g * v / ||v||`` with the norm over every axis of ``v`` but ``dim`` (canonical, or None).

    ``v`` is viewed as (A, D, B): A the size of the axes before ``dim``, D the
    size of ``dim``, B the size of the axes after it (``dim=None``: (1, 1, size))::

        forward     ||v||_d^2 = sum v^2                              (kernel, float64)
                    w = v * (g / ||v||)                              (kernel)
        backward    grad_g = sum(grad_w * v) / ||v||                 (kernel, float64)
                    grad_v = g/||v|| * (grad_w - grad_g * v/||v||)   (kernel)
    """

    def forward(self, v, g, *, dim):
        xp = get_array_module(v)
        v3 = as_dim_3d(v, dim)
        norm = xp.sqrt(_sum_sq(v3))
        g64 = g.reshape(-1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = xp.ascontiguousarray(g64 / norm)
        w3 = buffer_pool.empty(xp, v3.shape, v3.dtype)
        kernels_for("weight_norm", v3).wn_scale(v3, scale, w3)
        self.save_for_backward(v3, g64, norm)
        self.v_shape, self.g_shape, self.g_dtype, self.dim = v.shape, g.shape, g.dtype, dim
        return w3.reshape(v.shape)

    def backward(self, grad):
        xp = get_array_module(grad)
        v3, g64, norm = self.saved
        k = kernels_for("weight_norm", v3)
        gw3 = as_dim_3d(grad, self.dim)
        dot = xp.empty(v3.shape[1], dtype=np.float64)
        k.wn_dot(gw3, v3, dot)
        with np.errstate(divide="ignore", invalid="ignore"):
            grad_g = dot / norm
            a = g64 / norm
            b = a * grad_g / norm
        grad_v = None
        if self.needs_input_grad[0]:
            gv3 = buffer_pool.empty(xp, v3.shape, v3.dtype)
            k.wn_backward_apply(gw3, v3, xp.ascontiguousarray(a), xp.ascontiguousarray(b), gv3)
            grad_v = gv3.reshape(self.v_shape)
        return grad_v, grad_g.astype(self.g_dtype).reshape(self.g_shape)

    def backward_graph(self, grad, inputs):
        """With create_graph: :class:`~tinynorm.ops.weight_norm_grad.WeightNormGrad` (its backward is the double backward)."""
        from .weight_norm_grad import graph_grads
        return graph_grads(self, grad, inputs)


def norm_except_dim(v, dim=0):
    """The 2-norm of ``v`` over every axis but ``dim`` (None: the whole tensor), as a Tensor of ``v``'s dtype.

    PyTorch's ``torch.norm_except_dim`` with its default ``pow=2`` (tinynorm
    takes no ``pow``; ``dim`` as in :func:`weight_norm`). The result has shape
    :func:`norm_shape` (``dim`` kept, other axes of size 1); it carries no
    gradient. Accumulated in float64.
    """
    data = as_tensor(v).data
    check_float_dtype(data, "norm_except_dim")
    if data.ndim == 0:
        raise ValueError("norm_except_dim: v must have at least one dimension, got a scalar")
    dim = _canonical_dim(dim, data.ndim, "norm_except_dim")
    xp = get_array_module(data)
    norm = xp.sqrt(_sum_sq(as_dim_3d(data, dim)))
    return Tensor(norm.astype(data.dtype).reshape(norm_shape(data.shape, dim)))


def weight_norm(v, g, dim=0):
    """Weight Normalization, PyTorch's ``torch._weight_norm`` (also importable under that name).

    ``w = g * v / ||v||`` with the 2-norm over every axis of ``v`` except
    ``dim``: ``dim=0`` (the default) gives one ``g`` per output unit,
    ``dim=None`` the norm of the whole tensor, and a negative ``dim`` counts
    from the end (``-1`` is the last axis; PyTorch's ``norm_except_dim`` reads
    ``-1`` as "whole tensor", tinynorm does not). ``g`` has ``v``'s dtype and
    one value per index of ``dim``: shape ``(v.shape[dim],)`` or that with the
    other axes kept as 1 (what :func:`norm_except_dim` returns); for
    ``dim=None`` a scalar (shape () or all ones). A slice whose norm is 0
    gives NaN (0/0), as in PyTorch. Norms and reductions accumulate in
    float64; the gradients are :class:`WeightNorm`'s.

    ``tinynorm.functional.weight_norm`` is a tinynorm addition:
    ``torch.nn.functional`` has no weight_norm; the module hook is
    :func:`tinynorm.nn.utils.weight_norm`, as ``torch.nn.utils.weight_norm``.

    Weight Normalization: A Simple Reparameterization to Accelerate Training
    of Deep Neural Networks, T. Salimans and D. P. Kingma, NeurIPS 2016.
    """
    v, g = as_tensor(v), as_tensor(g)
    check_float_dtype(v.data, "weight_norm v")
    check_float_dtype(g.data, "weight_norm g")
    if v.dtype != g.dtype:
        raise ValueError(f"weight_norm: g dtype {g.dtype} differs from v dtype {v.dtype}")
    if v.ndim == 0:
        raise ValueError("weight_norm: v must have at least one dimension, got a scalar")
    dim = _canonical_dim(dim, v.ndim, "weight_norm")
    if dim is None:
        ok = g.numel() == 1
        expected = "a scalar (shape () or all ones)"
    else:
        ok = tuple(g.shape) in ((v.shape[dim],), norm_shape(v.shape, dim))
        expected = f"({v.shape[dim]},) or {norm_shape(v.shape, dim)}"
    if not ok:
        raise ValueError(
            f"weight_norm: g has shape {tuple(g.shape)}, expected {expected} for v of shape "
            f"{tuple(v.shape)} and dim={dim}")
    return WeightNorm.apply(v, g, dim=dim)


_weight_norm = weight_norm      # PyTorch's name for it, torch._weight_norm
