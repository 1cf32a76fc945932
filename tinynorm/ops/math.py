"""Elementwise arithmetic, activations, reductions and matmul.

Generic math goes through the array module of the inputs (NumPy or CuPy);
gradients of broadcast operands are summed back to the operand's shape.
Each op's ``backward_graph`` states the same gradient with tape ops, for
``create_graph=True`` (second order).
"""
import numpy as np

from .. import blas, buffer_pool
from ..autograd import Function, unbroadcast
from ..graph import sum_to
from ..tensor import Tensor
from ..backend import get_array_module, has_kernel
from ..dims import dims
from ..kernels import kernels_for


class Add(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])

    def backward_graph(self, g, inputs):
        return sum_to(g, self.shapes[0]), sum_to(g, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(-g, self.shapes[1])

    def backward_graph(self, g, inputs):
        return sum_to(g, self.shapes[0]), sum_to(-g, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, g):
        a, b = self.saved
        ga = unbroadcast(g * b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb

    def backward_graph(self, g, inputs):
        a, b = inputs
        ga = sum_to(g * b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(g * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, g):
        a, b = self.saved
        ga = unbroadcast(g / b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb

    def backward_graph(self, g, inputs):
        a, b = inputs
        ga = sum_to(g / b, a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(-g * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g

    def backward_graph(self, g, inputs):
        return -g


class Pow(Function):
    """``a ** p`` for a Python scalar exponent ``p``; ``d/da = p a^(p-1)``, and 0 for ``p = 0`` (as PyTorch, not 0 * inf at a = 0)."""

    def forward(self, a, *, exponent):
        self.exponent = exponent
        self.save_for_backward(a)
        return a ** exponent

    def backward(self, g):
        (a,) = self.saved
        p = self.exponent
        if p == 0:
            return get_array_module(a).zeros_like(a)
        return g * (p * a ** (p - 1)).astype(a.dtype, copy=False)

    def backward_graph(self, g, inputs):
        (a,) = inputs
        if self.exponent == 0:
            return g * 0
        return g * (a ** (self.exponent - 1) * self.exponent)


class _OutputSaved(Function):
    """An elementwise op whose gradient is written with its output ``y``: forward saves ``y``, and
    :meth:`_y` is ``y`` as a Tensor for ``backward_graph`` (the op's own output when the sweep has
    met it, else recomputed on the tape). ``method`` names the op's array-module function and
    Tensor method."""

    method = None

    def forward(self, a):
        y = self._compute(get_array_module(a), a)
        self.save_for_backward(y)
        return y

    def _compute(self, xp, a):
        return getattr(xp, self.method)(a)

    def _y(self, inputs):
        return self.output if self.output is not None else getattr(inputs[0], self.method)()


class Exp(_OutputSaved):
    method = "exp"

    def backward(self, g):
        return g * self.saved[0]

    def backward_graph(self, g, inputs):
        return g * self._y(inputs)


class Log(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return get_array_module(a).log(a)

    def backward(self, g):
        return g / self.saved[0]

    def backward_graph(self, g, inputs):
        return g / inputs[0]


class Tanh(_OutputSaved):
    method = "tanh"

    def backward(self, g):
        y = self.saved[0]
        return g * (1 - y * y)

    def backward_graph(self, g, inputs):
        y = self._y(inputs)
        return g * (1 - y * y)


class Sigmoid(_OutputSaved):
    """``1 / (1 + exp(-a))``, evaluated without overflow for large ``|a|``."""

    method = "sigmoid"

    def _compute(self, xp, a):
        e = xp.exp(-xp.abs(a))
        return xp.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)

    def backward(self, g):
        y = self.saved[0]
        return g * y * (1 - y)

    def backward_graph(self, g, inputs):
        y = self._y(inputs)
        return g * y * (1 - y)


class ReLU(Function):
    """``max(a, 0)``; float32/float64 arrays take a fused kernel (:func:`has_kernel`), others the
    array module (float16 included, as PyTorch computes it); bool is refused as in PyTorch."""

    def forward(self, a):
        xp = get_array_module(a)
        if a.dtype.kind == "b":
            raise RuntimeError("Boolean inputs not supported for relu")
        if has_kernel(a) and a.flags.c_contiguous:
            y = kernels_for("activation", a).relu_forward(a, buffer_pool.empty(xp, a.shape, a.dtype))
        else:
            y = xp.maximum(a, 0)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        y = self.saved[0]
        if g.dtype == y.dtype and has_kernel(y) and y.flags.c_contiguous:
            xp = get_array_module(y)
            if xp is get_array_module(g):
                g = xp.ascontiguousarray(g)
                dx = buffer_pool.empty(xp, y.shape, y.dtype)
                return kernels_for("activation", y).relu_backward(g, y, dx)
        return g * (y > 0)

    def backward_graph(self, g, inputs):
        y = self.saved[0]
        return MaskedGrad.apply(g, inputs[0], mask=(y > 0).astype(y.dtype))


class Maximum(Function):
    """Elementwise maximum; on ties the gradient is split evenly (as PyTorch)."""

    def forward(self, a, b):
        xp = get_array_module(a, b)
        self.save_for_backward(a, b)
        return xp.maximum(a, b)

    def backward(self, g):
        a, b = self.saved
        wa = ((a > b) + 0.5 * (a == b)).astype(g.dtype)
        return unbroadcast(g * wa, a.shape), unbroadcast(g * (1 - wa), b.shape)

    def backward_graph(self, g, inputs):
        a, b = self.saved
        wa = ((a > b) + 0.5 * (a == b)).astype(g.dtype)
        return (sum_to(MaskedGrad.apply(g, *inputs, mask=wa), a.shape),
                sum_to(MaskedGrad.apply(g, *inputs, mask=1 - wa), b.shape))


class MaskedGrad(Function):
    """``g * mask`` for a mask that is piecewise constant in the other inputs (ReLU, Maximum).

    Those inputs are on the tape with a zero derivative, as in PyTorch
    (``threshold_backward``), so a second order through them is zeros, not "unused".
    """

    def forward(self, g, *others, mask):
        self.mask, self.other_shapes = mask, tuple(o.shape for o in others)
        return g * mask

    def backward(self, u):
        xp = get_array_module(u)
        return (u * self.mask,) + tuple(xp.zeros(s, dtype=u.dtype) for s in self.other_shapes)

    def backward_graph(self, u, inputs):
        return (MaskedGrad.apply(u, *inputs[1:], mask=self.mask),) + tuple(
            Tensor(get_array_module(u.data).zeros(t.shape, dtype=u.dtype)) for t in inputs[1:])


def _expand_back(g, shape, axes, keepdim):
    xp = get_array_module(g)
    if not keepdim:
        g = xp.expand_dims(g, axes) if axes else g
    return xp.broadcast_to(g, shape)


def _expand_back_graph(g, shape, axes, keepdim):
    from .shape import BroadcastTo
    if not keepdim and axes:
        g = g.reshape(tuple(1 if i in axes else s for i, s in enumerate(shape)))
    return BroadcastTo.apply(g, shape=shape)


class Sum(Function):
    def forward(self, a, *, dim=None, keepdim=False):
        self.shape = a.shape
        self.axes = dims(dim, a.ndim, type(self).__name__.lower())
        self.keepdim = keepdim
        return a.sum(axis=self.axes, keepdims=keepdim)

    def backward(self, g):
        return _expand_back(g, self.shape, self.axes, self.keepdim).copy()

    def backward_graph(self, g, inputs):
        return _expand_back_graph(g, self.shape, self.axes, self.keepdim)


class Mean(Function):
    def forward(self, a, *, dim=None, keepdim=False):
        self.shape = a.shape
        self.axes = dims(dim, a.ndim, type(self).__name__.lower())
        self.keepdim = keepdim
        self.count = 1
        for ax in self.axes:
            self.count *= a.shape[ax]
        return a.mean(axis=self.axes, keepdims=keepdim)

    def backward(self, g):
        return _expand_back(g / self.count, self.shape, self.axes, self.keepdim).copy()

    def backward_graph(self, g, inputs):
        return _expand_back_graph(g / self.count, self.shape, self.axes, self.keepdim)


class MatMul(Function):
    """``a @ b`` for operands of rank >= 2 with broadcast batch dimensions."""

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError("MatMul takes operands of rank >= 2; Tensor.__matmul__ promotes 1-D ones")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied "
                             f"({a.shape[-1]} columns against {b.shape[-2]} rows)")
        self.save_for_backward(a, b)
        return blas.matmul(a, b)

    def backward(self, g):
        a, b = self.saved
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(blas.matmul(g, b.swapaxes(-1, -2)), a.shape)
        if self.needs_input_grad[1]:
            gb = unbroadcast(blas.matmul(a.swapaxes(-1, -2), g), b.shape)
        return ga, gb

    def backward_graph(self, g, inputs):
        a, b = inputs
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(MatMul.apply(g, b.transpose(-1, -2)), a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to(MatMul.apply(a.transpose(-1, -2), g), b.shape)
        return ga, gb

class Extremum(Function):
    """``max`` or ``min`` along ``dim`` (``op`` is 'max' or 'min'); the gradient goes to the
    first extremal element of each slice, whose index is written to ``indices_out['indices']``
    (PyTorch's ``max(dim)``/``min(dim)``)."""

    def forward(self, a, *, op, dim, keepdim, indices_out):
        xp = get_array_module(a)
        idx = (a.argmax if op == "max" else a.argmin)(axis=dim)
        idx = xp.expand_dims(idx, dim)
        self.op, self.shape, self.dim, self.keepdim, self.idx = op, a.shape, dim, keepdim, idx
        values = xp.take_along_axis(a, idx, axis=dim)
        indices_out["indices"] = idx if keepdim else xp.squeeze(idx, dim)
        return values if keepdim else xp.squeeze(values, dim)

    def backward(self, g):
        xp = get_array_module(g)
        if not self.keepdim:
            g = xp.expand_dims(g, self.dim)
        shape = [1] * len(self.shape)
        shape[self.dim] = self.shape[self.dim]
        hit = xp.arange(self.shape[self.dim]).reshape(shape) == self.idx
        return xp.where(hit, g, g.dtype.type(0))

    def backward_graph(self, g, inputs):
        xp = get_array_module(g.data)
        shape = [1] * len(self.shape)
        shape[self.dim] = self.shape[self.dim]
        hit = (xp.arange(self.shape[self.dim]).reshape(shape) == self.idx).astype(g.dtype)
        return MaskedGrad.apply(_expand_back_graph(g, self.shape, (self.dim,), self.keepdim),
                                inputs[0], mask=hit)


class ExtremumAll(Function):
    """``max()`` or ``min()`` of every element; ties share the gradient evenly (as PyTorch)."""

    def forward(self, a, *, op):
        xp = get_array_module(a)
        y = a.max() if op == "max" else a.min()
        self.op = op
        self.save_for_backward(a)
        self.y = y
        return xp.asarray(y)

    def backward(self, g):
        (a,) = self.saved
        mask = (a == self.y).astype(g.dtype)
        return mask * (g / mask.sum())

    def backward_graph(self, g, inputs):
        mask = (inputs[0].data == self.y).astype(g.dtype)
        return MaskedGrad.apply(_expand_back_graph(g, mask.shape, (), True), inputs[0],
                                mask=mask / mask.sum())


class Cast(Function):
    """``a.astype(dtype)`` between float dtypes; the gradient is cast back."""

    def forward(self, a, *, dtype):
        self.in_dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.in_dtype)

    def backward_graph(self, g, inputs):
        return Cast.apply(g, dtype=self.in_dtype)


class Abs(Function):
    """``|a|``; the gradient is ``sign(a)``, 0 at 0 (as PyTorch)."""

    def forward(self, a):
        self.save_for_backward(a)
        return get_array_module(a).abs(a)

    def backward(self, g):
        (a,) = self.saved
        return g * get_array_module(a).sign(a).astype(g.dtype, copy=False)

    def backward_graph(self, g, inputs):
        a = inputs[0].data
        return MaskedGrad.apply(g, inputs[0], mask=get_array_module(a).sign(a).astype(g.dtype))


class ToDevice(Function):
    """``a.to('cuda')`` or ``a.to('cpu')``; the gradient moves back to ``a``'s device."""

    def forward(self, a, *, device):
        self.back = "cuda" if device == "cpu" else "cpu"
        return _move(a, device)

    def backward(self, g):
        return _move(g, self.back)

    def backward_graph(self, g, inputs):
        return g.to(self.back)


def _move(a, device):
    if device == "cpu":
        return a.get() if get_array_module(a) is not np else a
    from .. import gpu
    gpu.require()
    import cupy
    return cupy.asarray(a)
