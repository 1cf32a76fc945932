"""Conv2d's two backward products as tape ops, so a convolution has every order of derivative.

For ``y = conv(x, W)`` the backward is ``dx = conv_input_grad(dy, W)`` (col2im
of ``W^T dy``) and ``dW = conv_weight_grad(x, dy)`` (``dy cols(x)^T``). All three
maps are bilinear and adjoint to each other, so their derivatives are the
other two: for an incoming ``u``,

    conv_input_grad(dy, W):  d/d dy = conv(u, W),            d/dW = conv_weight_grad(u, dy)
    conv_weight_grad(x, dy): d/dx   = conv_input_grad(dy, u), d/d dy = conv(x, u)

With ``create_graph=True`` :meth:`Conv2d.backward_graph` builds these two
Functions; the first-order path keeps Conv2d's own backward.
"""
from .. import blas, buffer_pool
from ..autograd import Function
from ..backend import get_array_module
from ..kernels import kernels_for


def _cols(x, geometry):
    n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, groups, oh, ow = geometry
    xp = get_array_module(x)
    cols = buffer_pool.empty(xp, (c * kh * kw, n * oh * ow), x.dtype)
    kernels_for("im2col", x).im2col(xp.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, dh, dw, cols)
    return cols


def _dy_groups(dy, groups):
    xp = get_array_module(dy)
    n, cout, oh, ow = dy.shape
    return xp.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(groups, cout // groups, n * oh * ow)


def conv(x, weight, geometry):
    """``y = conv(x, W)`` without bias (Conv2d's forward)."""
    n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, groups, oh, ow = geometry
    xp = get_array_module(x)
    cout = weight.shape[0]
    cols = _cols(x, geometry).reshape(groups, c // groups * kh * kw, n * oh * ow)
    out = blas.matmul(xp.ascontiguousarray(weight).reshape(groups, cout // groups, -1), cols)
    return xp.ascontiguousarray(out.reshape(cout, n, oh, ow).transpose(1, 0, 2, 3))


def input_grad(dy, weight, geometry):
    n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, groups, oh, ow = geometry
    xp = get_array_module(dy)
    cout = weight.shape[0]
    w2 = xp.ascontiguousarray(weight).reshape(groups, cout // groups, -1)
    dcols = blas.matmul(xp.swapaxes(w2, 1, 2), _dy_groups(dy, groups))
    gx = buffer_pool.empty(xp, (n, c, h, w), dy.dtype)
    kernels_for("im2col", dy).col2im(dcols.reshape(c * kh * kw, n * oh * ow), n, c, h, w,
                                     kh, kw, sh, sw, ph, pw, dh, dw, gx)
    return gx


def weight_grad(x, dy, geometry):
    n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, groups, oh, ow = geometry
    xp = get_array_module(x)
    cols = _cols(x, geometry).reshape(groups, c // groups * kh * kw, n * oh * ow)
    gw = blas.matmul(_dy_groups(dy, groups), xp.swapaxes(cols, 1, 2))
    return gw.reshape(dy.shape[1], c // groups, kh, kw)


def _conv_apply(x, weight, geometry):
    from .conv import Conv2d
    sh, sw, ph, pw, dh, dw, groups = geometry[6:13]
    return Conv2d.apply(x, weight, None, stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw),
                        groups=groups)


class _ConvGrad(Function):
    """One of conv2d's two gradients as an op of its two inputs (so that it has a backward):
    forward saves both and returns ``compute(first, second, geometry)``."""

    compute = None

    def forward(self, first, second, *, geometry):
        self.geometry = geometry
        self.save_for_backward(first, second)
        return self.compute(first, second, geometry)


class Conv2dInputGrad(_ConvGrad):
    """``dx = conv_input_grad(dy, W)``; inputs (dy, W)."""

    compute = staticmethod(input_grad)

    def backward(self, u):
        dy, weight = self.saved
        return (conv(u, weight, self.geometry) if self.needs_input_grad[0] else None,
                weight_grad(u, dy, self.geometry) if self.needs_input_grad[1] else None)

    def backward_graph(self, u, inputs):
        dy, weight = inputs
        return (_conv_apply(u, weight, self.geometry) if self.needs_input_grad[0] else None,
                Conv2dWeightGrad.apply(u, dy, geometry=self.geometry)
                if self.needs_input_grad[1] else None)


class Conv2dWeightGrad(_ConvGrad):
    """``dW = conv_weight_grad(x, dy)``; inputs (x, dy)."""

    compute = staticmethod(weight_grad)

    def backward(self, u):
        x, dy = self.saved
        return (input_grad(dy, u, self.geometry) if self.needs_input_grad[0] else None,
                conv(x, u, self.geometry) if self.needs_input_grad[1] else None)

    def backward_graph(self, u, inputs):
        x, dy = inputs
        return (Conv2dInputGrad.apply(dy, u, geometry=self.geometry)
                if self.needs_input_grad[0] else None,
                _conv_apply(x, u, self.geometry) if self.needs_input_grad[1] else None)
