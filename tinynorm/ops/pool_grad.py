"""The pools' backward as tape ops, for ``create_graph=True``.

Each pool's backward is linear in the incoming gradient, with an adjoint that
is already a kernel: average pooling's backward spreads each window's gradient
over the window, its adjoint is the average itself; max pooling's backward
scatters to the argmax positions, its adjoint gathers from them (the argmax is
a constant of the forward, so the second derivative in x is zero). The
Functions below pair each backward with its adjoint, so every order exists.
"""
from .. import buffer_pool
from ..autograd import Function
from ..backend import get_array_module
from ..kernels import kernels_for


def _scatter(g, argmax, shape):
    xp = get_array_module(g)
    dx = buffer_pool.empty(xp, shape, g.dtype)
    return kernels_for("pooling", g).max_pool2d_backward(xp.ascontiguousarray(g), argmax, dx)


def _gather(u, argmax):
    xp = get_array_module(u)
    n, c = u.shape[:2]
    flat = xp.take_along_axis(u.reshape(n, c, -1), argmax.reshape(n, c, -1), axis=2)
    return xp.ascontiguousarray(flat.reshape(argmax.shape))


class MaxPoolScatter(Function):
    """MaxPool2d's backward: ``g`` added at the argmax positions of a zero input-shaped array.

    The pool's input, when given after ``g``, is on the tape with a zero
    derivative (the argmax is piecewise constant in it), as in PyTorch.
    """

    def forward(self, g, *others, argmax, shape):
        self.argmax, self.other_shapes = argmax, tuple(o.shape for o in others)
        return _scatter(g, argmax, shape)

    def backward(self, u):
        xp = get_array_module(u)
        return (_gather(u, self.argmax),) + tuple(xp.zeros(s, dtype=u.dtype)
                                                  for s in self.other_shapes)

    def backward_graph(self, u, inputs):
        from ..tensor import Tensor
        xp = get_array_module(u.data)
        return (MaxPoolGather.apply(u, argmax=self.argmax),) + tuple(
            Tensor(xp.zeros(s, dtype=u.dtype)) for s in self.other_shapes)


class MaxPoolGather(Function):
    """The adjoint of :class:`MaxPoolScatter`: ``u`` read at the argmax positions."""

    def forward(self, u, *, argmax):
        self.argmax, self.shape = argmax, u.shape
        return _gather(u, argmax)

    def backward(self, g):
        return _scatter(g, self.argmax, self.shape)

    def backward_graph(self, g, inputs):
        return MaxPoolScatter.apply(g, argmax=self.argmax, shape=self.shape)


def _avg(u, params, out_hw):
    xp = get_array_module(u)
    y = buffer_pool.empty(xp, u.shape[:2] + tuple(out_hw), u.dtype)
    return kernels_for("pooling", u).avg_pool2d_forward(xp.ascontiguousarray(u), *params, y)


class AvgPoolGrad(Function):
    """AvgPool2d's backward; ``params`` are AvgPool2d's (kh, kw, sh, sw, ph, pw, count_include_pad)."""

    def forward(self, g, *, params, shape):
        xp = get_array_module(g)
        self.params, self.out_hw = params, g.shape[2:]
        dx = buffer_pool.empty(xp, shape, g.dtype)
        return kernels_for("pooling", g).avg_pool2d_backward(xp.ascontiguousarray(g), *params, dx)

    def backward(self, u):
        return _avg(u, self.params, self.out_hw)

    def backward_graph(self, u, inputs):
        from .pooling import AvgPool2d
        p = self.params
        return AvgPool2d.apply(u, kernel_size=p[0:2], stride=p[2:4], padding=p[4:6],
                               count_include_pad=p[6], out_size=tuple(self.out_hw))


class AdaptiveAvgPoolGrad(Function):
    """AdaptiveAvgPool2d's backward; its adjoint is the adaptive average itself."""

    def forward(self, g, *, shape):
        xp = get_array_module(g)
        self.out_hw = g.shape[2:]
        dx = buffer_pool.empty(xp, shape, g.dtype)
        return kernels_for("pooling", g).adaptive_avg_pool2d_backward(xp.ascontiguousarray(g), dx)

    def backward(self, u):
        xp = get_array_module(u)
        y = buffer_pool.empty(xp, u.shape[:2] + tuple(self.out_hw), u.dtype)
        return kernels_for("pooling", u).adaptive_avg_pool2d_forward(xp.ascontiguousarray(u), y)

    def backward_graph(self, u, inputs):
        from .pooling import AdaptiveAvgPool2d
        return AdaptiveAvgPool2d.apply(u, out_size=tuple(self.out_hw))
