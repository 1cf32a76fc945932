"""Max, average and adaptive-average 2-D pooling on Numba kernels (PyTorch's rules).

With ``create_graph=True`` each backward is a Function of :mod:`tinynorm.ops.pool_grad`.
"""
from .. import buffer_pool
from ..autograd import Function
from ..backend import get_array_module
from ..kernels import kernels_for


class MaxPool2d(Function):
    def forward(self, x, *, kernel_size, stride, padding, dilation, out_size, indices_out=None):
        xp = get_array_module(x)
        x = xp.ascontiguousarray(x)
        n, c, h, w = x.shape
        y = buffer_pool.empty(xp, (n, c) + out_size, x.dtype)
        self.argmax = xp.empty((n, c) + out_size, dtype=xp.int64)
        kernels_for("pooling", x).max_pool2d_forward(
            x, *kernel_size, *stride, *padding, *dilation, y, self.argmax)
        if indices_out is not None:
            indices_out["indices"] = self.argmax.copy()
        self.in_shape = x.shape
        return y

    def backward(self, g):
        xp = get_array_module(g)
        dx = buffer_pool.empty(xp, self.in_shape, g.dtype)
        kernels_for("pooling", g).max_pool2d_backward(xp.ascontiguousarray(g), self.argmax, dx)
        return dx

    def backward_graph(self, g, inputs):
        from .pool_grad import MaxPoolScatter
        return MaxPoolScatter.apply(g, inputs[0], argmax=self.argmax, shape=self.in_shape)


class AvgPool2d(Function):
    def forward(self, x, *, kernel_size, stride, padding, count_include_pad, out_size):
        xp = get_array_module(x)
        x = xp.ascontiguousarray(x)
        n, c, h, w = x.shape
        y = buffer_pool.empty(xp, (n, c) + out_size, x.dtype)
        self.params = (*kernel_size, *stride, *padding, count_include_pad)
        kernels_for("pooling", x).avg_pool2d_forward(x, *self.params, y)
        self.in_shape = x.shape
        return y

    def backward(self, g):
        xp = get_array_module(g)
        dx = buffer_pool.empty(xp, self.in_shape, g.dtype)
        kernels_for("pooling", g).avg_pool2d_backward(xp.ascontiguousarray(g), *self.params, dx)
        return dx

    def backward_graph(self, g, inputs):
        from .pool_grad import AvgPoolGrad
        return AvgPoolGrad.apply(g, params=self.params, shape=self.in_shape)


class AdaptiveAvgPool2d(Function):
    def forward(self, x, *, out_size):
        xp = get_array_module(x)
        x = xp.ascontiguousarray(x)
        y = buffer_pool.empty(xp, x.shape[:2] + out_size, x.dtype)
        kernels_for("pooling", x).adaptive_avg_pool2d_forward(x, y)
        self.in_shape = x.shape
        return y

    def backward(self, g):
        xp = get_array_module(g)
        dx = buffer_pool.empty(xp, self.in_shape, g.dtype)
        kernels_for("pooling", g).adaptive_avg_pool2d_backward(xp.ascontiguousarray(g), dx)
        return dx

    def backward_graph(self, g, inputs):
        from .pool_grad import AdaptiveAvgPoolGrad
        return AdaptiveAvgPoolGrad.apply(g, shape=self.in_shape)
