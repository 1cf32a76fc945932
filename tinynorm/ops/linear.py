"""The fused affine map of ``nn.Linear`` and the weight transpose that feeds it.

``F.linear(x, W, b)`` records the tape PyTorch's ``nn.Linear`` records for a
2-D input: ``T`` (``TBackward0``, the view ``W^T``) feeding ``Linear``
(``AddmmBackward0`` with a bias, ``MmBackward0`` without).
"""
from .. import blas
from ..autograd import Function
from .math import MatMul


class T(Function):
    """``a^T`` of a 2-D array, a view (PyTorch's ``t()``)."""

    def forward(self, a):
        return a.T

    def backward(self, g):
        return g.T

    def backward_graph(self, g, inputs):
        return T.apply(g)


class Linear(Function):
    """``y = b + x W^T``, one GEMM (PyTorch's ``addmm(b, x, W.t())``).

    Inputs are ``(b, x, Wt)``, or ``(x, Wt)`` without a bias, with ``x`` of
    shape (N, in) and ``Wt = W^T`` of shape (in, out). For ``G = dL/dy``:
    ``dx = G W``, ``dW^T = x^T G`` (computed as ``(G^T x)^T`` so that ``dW``
    lands contiguous), ``db = sum_n G_n``.
    """

    def forward(self, *arrays):
        x, wt = arrays[-2:]
        self.has_bias = len(arrays) == 3
        self.save_for_backward(x, wt)
        y = blas.matmul(x, wt)
        if self.has_bias:
            y += arrays[0]
        return y

    def backward(self, g):
        x, wt = self.saved
        grads = [None, None]
        if self.needs_input_grad[-2]:
            grads[0] = blas.matmul(g, wt.T)
        if self.needs_input_grad[-1]:
            grads[1] = blas.matmul(g.T, x).T
        if not self.has_bias:
            return tuple(grads)
        db = g.sum(axis=0) if self.needs_input_grad[0] else None
        return (db, *grads)

    def backward_graph(self, g, inputs):
        x, wt = inputs[-2:]
        grads = [None, None]
        if self.needs_input_grad[-2]:
            grads[0] = MatMul.apply(g, T.apply(wt))
        if self.needs_input_grad[-1]:
            grads[1] = T.apply(MatMul.apply(T.apply(g), x))
        if not self.has_bias:
            return tuple(grads)
        db = g.sum(0) if self.needs_input_grad[0] else None
        return (db, *grads)
