"""ReLU forward and backward as single passes into caller-allocated outputs.

``y = x if not (x <= 0) else 0`` (a NaN stays NaN); ``dx = dy * (y > 0)``.
NumPy needs a temporary mask and a fresh output for each.
"""
import numpy as np
from numba import prange

from .jit import serial_and_parallel

PARALLEL_THRESHOLD = 1 << 16
"""Elements from which the ``prange`` kernels run."""


def _relu_body(x, y):
    for i in prange(x.size):
        v = x[i]
        y[i] = v if not (v <= 0) else 0


def _relu_backward_body(dy, y, dx):
    for i in prange(dy.size):
        dx[i] = dy[i] if y[i] > 0 else 0


_relu_ser, _relu_par = serial_and_parallel(_relu_body)
_relu_bwd_ser, _relu_bwd_par = serial_and_parallel(_relu_backward_body)


def relu_forward(x, y):
    """``y = max(x, 0)`` for C-contiguous ``x`` and ``y`` of one float dtype."""
    kernel = _relu_par if x.size >= PARALLEL_THRESHOLD else _relu_ser
    kernel(x.reshape(-1), y.reshape(-1))
    return y


def relu_backward(dy, y, dx):
    """``dx = dy`` where ``y > 0``, else 0."""
    kernel = _relu_bwd_par if dy.size >= PARALLEL_THRESHOLD else _relu_bwd_ser
    kernel(np.ascontiguousarray(dy).reshape(-1), y.reshape(-1), dx.reshape(-1))
    return dx
