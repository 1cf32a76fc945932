"""Elementwise arithmetic, activations, reductions and matmul.

Generic math goes through the array module of the inputs (NumPy or CuPy);
gradients of broadcast operands are summed back to the operand's shape.
"""
import numpy as np

from .. import blas, memory
from ..autograd import Function, unbroadcast
from ..backend import get_array_module
from ..dims import dims
from ..kernels import kernels_for


class Add(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(-g, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, g):
        a, b = self.saved
        ga = unbroadcast(g * b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * a, b.shape) if self.needs_input_grad[1] else None
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


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
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


class Exp(Function):
    def forward(self, a):
        y = get_array_module(a).exp(a)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        return g * self.saved[0]


class Log(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return get_array_module(a).log(a)

    def backward(self, g):
        return g / self.saved[0]


class Tanh(Function):
    def forward(self, a):
        y = get_array_module(a).tanh(a)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        y = self.saved[0]
        return g * (1 - y * y)


class Sigmoid(Function):
    """``1 / (1 + exp(-a))``, evaluated without overflow for large ``|a|``."""

    def forward(self, a):
        xp = get_array_module(a)
        e = xp.exp(-xp.abs(a))
        y = xp.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        y = self.saved[0]
        return g * y * (1 - y)


class ReLU(Function):
    """``max(a, 0)``; float NumPy arrays take a fused Numba pass, others the array module."""

    def forward(self, a):
        xp = get_array_module(a)
        if a.dtype.kind == "f" and a.flags.c_contiguous:
            y = kernels_for("activation", a).relu_forward(a, memory.empty(xp, a.shape, a.dtype))
        else:
            y = xp.maximum(a, 0)
        self.save_for_backward(y)
        return y

    def backward(self, g):
        y = self.saved[0]
        if g.dtype == y.dtype and y.dtype.kind == "f" and y.flags.c_contiguous:
            xp = get_array_module(y)
            if xp is get_array_module(g):
                g = xp.ascontiguousarray(g)
                dx = memory.empty(xp, y.shape, y.dtype)
                return kernels_for("activation", y).relu_backward(g, y, dx)
        return g * (y > 0)


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


def _expand_back(g, shape, axes, keepdim):
    xp = get_array_module(g)
    if not keepdim:
        g = xp.expand_dims(g, axes) if axes else g
    return xp.broadcast_to(g, shape)


class Sum(Function):
    def forward(self, a, *, dim=None, keepdim=False):
        self.shape = a.shape
        self.axes = dims(dim, a.ndim, type(self).__name__.lower())
        self.keepdim = keepdim
        return a.sum(axis=self.axes, keepdims=keepdim)

    def backward(self, g):
        return _expand_back(g, self.shape, self.axes, self.keepdim).copy()


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
        xp = get_array_module(g)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(blas.matmul(g, xp.swapaxes(b, -1, -2)), a.shape)
        if self.needs_input_grad[1]:
            gb = unbroadcast(blas.matmul(xp.swapaxes(a, -1, -2), g), b.shape)
        return ga, gb
