"""2-D convolution as im2col (a Numba kernel) feeding one BLAS GEMM per group.

``cols[(c, i, j), (n, oh, ow)] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]``;
``y[n, o] = W[o] @ cols[group(o)] + b[o]``. Backward: ``dW = dy @ cols^T``,
``dcols = W^T @ dy`` scattered back by col2im (the adjoint of im2col). On the CPU, large output
planes or small weights (``conv_planes.pays``) are convolved one sample per GEMM instead
(:mod:`tinynorm.kernels.cpu.conv_planes`), in NCHW throughout.
"""
import numpy as np
from numba import get_num_threads

from .. import blas, buffer_pool
from ..autograd import Function
from ..backend import get_array_module
from ..kernels import kernels_for
from ..kernels.cpu import conv_planes


class Conv2d(Function):
    """Inputs ``(x, weight, bias)``, ``bias`` possibly None; geometry as pairs of ints."""

    def forward(self, x, weight, bias, *, stride, padding, dilation, groups):
        xp = get_array_module(x)
        k = kernels_for("im2col", x)
        n, c, h, w = x.shape
        cout, cg, kh, kw = weight.shape
        (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
        oh = k.conv_output_size(h, kh, sh, ph, dh)
        ow = k.conv_output_size(w, kw, sw, pw, dw)
        if oh <= 0 or ow <= 0:
            raise ValueError(
                f"conv2d: input {h}x{w} is too small for kernel {kh}x{kw} with padding "
                f"{padding} and dilation {dilation} (output would be {oh}x{ow})")
        x = xp.ascontiguousarray(x)
        self.geometry = (n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, groups, oh, ow)
        self.planes = xp is np and groups == 1 and conv_planes.pays(oh * ow, weight.size)
        if self.planes:
            with blas.one_thread_gemm(x.dtype) as fn:
                self.planes = fn is not None
                if fn is not None:
                    return self._planes_forward(fn, x, weight, bias)
        cols = buffer_pool.empty(xp, (c * kh * kw, n * oh * ow), x.dtype)
        k.im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, cols)
        w2 = weight.reshape(groups, cout // groups, cg * kh * kw)
        out = blas.matmul(w2, cols.reshape(groups, cg * kh * kw, n * oh * ow))
        y = buffer_pool.empty(xp, (n, cout, oh, ow), out.dtype)
        k.swap_leading(xp.ascontiguousarray(out).reshape(cout, n, oh * ow), bias,
                       y.reshape(n, cout, oh * ow))
        self.save_for_backward(cols, weight)
        return y

    def _scratch(self, dtype):
        n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, groups, oh, ow = self.geometry
        parts = max(1, min(n, get_num_threads()))
        return parts, buffer_pool.empty(np, (parts, c * kh * kw, oh * ow), dtype)

    def _planes_forward(self, fn, x, weight, bias):
        """One sample per GEMM (kernels/cpu/conv_planes.py); the input, not its unfolded
        patches, is saved for backward."""
        n, oh, ow = x.shape[0], self.geometry[13], self.geometry[14]
        parts, cols = self._scratch(x.dtype)
        y = buffer_pool.empty(np, (n, weight.shape[0], oh, ow), x.dtype)
        kernels_for("conv_planes", x).forward(fn, x, weight, bias, self.geometry[4:12], cols, y,
                                              parts)
        self.save_for_backward(x, weight)
        return y

    def _planes_backward(self, g):
        x, weight = self.saved
        want_x, want_w = self.needs_input_grad[0], self.needs_input_grad[1]
        parts, cols = self._scratch(g.dtype)
        dcols = self._scratch(g.dtype)[1] if want_x else cols
        gw = np.empty((parts,) + (weight.shape[0], cols.shape[1]) if want_w else (1, 1, 1), g.dtype)
        dx = buffer_pool.empty(np, x.shape if want_x else (1, 1, 1, 1), g.dtype)
        with blas.one_thread_gemm(g.dtype) as fn:
            kernels_for("conv_planes", g).backward(fn, x, weight, g, self.geometry[4:12], cols,
                                                   dcols, gw, dx, want_x, want_w, parts)
        return (dx if want_x else None, gw.sum(axis=0).reshape(weight.shape) if want_w else None,
                g.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None)

    def backward(self, g):
        if self.planes:
            return self._planes_backward(g)
        xp = get_array_module(g)
        cols, weight = self.saved
        n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, groups, oh, ow = self.geometry
        cout = weight.shape[0]
        gy = buffer_pool.empty(xp, (cout, n, oh * ow), g.dtype)
        kernels_for("im2col", g).swap_leading(xp.ascontiguousarray(g).reshape(n, cout, oh * ow), None, gy)
        gy = gy.reshape(groups, cout // groups, n * oh * ow)
        cols_g = cols.reshape(groups, c // groups * kh * kw, n * oh * ow)
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            w2 = weight.reshape(groups, cout // groups, -1)
            dcols = blas.matmul(xp.swapaxes(w2, 1, 2), gy).reshape(c * kh * kw, n * oh * ow)
            gx = buffer_pool.empty(xp, (n, c, h, w), g.dtype)
            kernels_for("im2col", g).col2im(dcols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, gx)
        if self.needs_input_grad[1]:
            gw = blas.matmul(gy, xp.swapaxes(cols_g, 1, 2)).reshape(weight.shape)
        if self.needs_input_grad[2]:
            gb = g.sum(axis=(0, 2, 3))
        return gx, gw, gb

    def backward_graph(self, g, inputs):
        """With create_graph: the two products of :mod:`tinynorm.ops.conv_grad`, differentiable to any order."""
        from .conv_grad import Conv2dInputGrad, Conv2dWeightGrad
        x, weight = inputs[0], inputs[1]
        need = self.needs_input_grad
        gx = Conv2dInputGrad.apply(g, weight, geometry=self.geometry) if need[0] else None
        gw = Conv2dWeightGrad.apply(x, g, geometry=self.geometry) if need[1] else None
        return gx, gw, g.sum(dim=(0, 2, 3)) if need[2] else None
