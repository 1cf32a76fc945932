"""ReLU forward and backward kernels for CUDA (numba.cuda), mirroring kernels/cpu/activation.py.

    y  = x if not (x <= 0) else 0      (a NaN stays NaN, -0.0 becomes +0.0)
    dx = dy if y > 0 else 0            (a NaN in y gives 0)

Same functions, arguments and meaning as tinynorm.kernels.cpu.activation, plus
a keyword `threads` (threads per block, a power of two up to 1024). One
thread per element, grid-stride.

Arrays may be NumPy arrays (copied to the device and, for outputs, back) or
device arrays (numba device arrays, or anything with
__cuda_array_interface__ such as CuPy arrays), which are used in place.
"""
import functools

import numpy as np
from numba import cuda, from_dtype

from .host import (Outputs as _Outputs, as_array as _as_array, device_input as _device_input,
                   flat as _flat, grid as _grid, launch as _launch,
                   threads_or_default as _threads,
                   c_contiguous as _c_contiguous)


@functools.lru_cache(maxsize=None)
def _relu_kernel(dtype):
    cast = from_dtype(np.dtype(dtype))

    @cuda.jit
    def kernel(x, n, y):
        zero = cast(0)
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            v = x[i]
            if v <= zero:
                y[i] = zero
            else:
                y[i] = v

    return kernel


@functools.lru_cache(maxsize=None)
def _relu_backward_kernel(dtype):
    cast = from_dtype(np.dtype(dtype))

    @cuda.jit
    def kernel(dy, y, n, dx):
        zero = cast(0)
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            if y[i] > zero:
                dx[i] = dy[i]
            else:
                dx[i] = zero

    return kernel


# ---------------------------------------------------------------------------
# host side


def _device(a):
    return _device_input(a) if isinstance(a, np.ndarray) else a


def _check(name, a, shape, dtype):
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(a.shape)}, expected {tuple(shape)}")
    if np.dtype(a.dtype) != np.dtype(dtype):
        raise TypeError(f"{name} has dtype {a.dtype}, expected {np.dtype(dtype)}")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
    if not _c_contiguous(a):
        raise ValueError(f"{name} must be C-contiguous")


def relu_forward(x, y, threads=None):
    """``y = max(x, 0)`` for C-contiguous ``x`` and ``y`` of one float dtype; returns y."""
    t = _threads(threads)
    xd, yd = _as_array(x), _as_array(y)
    if isinstance(xd, np.ndarray):
        xd = np.ascontiguousarray(xd)
    _check("x", xd, xd.shape, xd.dtype)
    _check("y", yd, xd.shape, xd.dtype)
    n = int(np.prod(xd.shape))
    if n == 0:
        return y
    out = _Outputs(yd)
    _launch(_relu_kernel(np.dtype(xd.dtype).type), _grid(n, t), t, _flat(_device(xd)), n,
            _flat(out.device[0]))
    out.copy_back()
    return y


def relu_backward(dy, y, dx, threads=None):
    """``dx = dy`` where ``y > 0``, else 0; returns dx."""
    t = _threads(threads)
    dyd, yd, dxd = _as_array(dy), _as_array(y), _as_array(dx)
    if isinstance(yd, np.ndarray):
        yd = np.ascontiguousarray(yd)
    if isinstance(dyd, np.ndarray):
        dyd = np.ascontiguousarray(dyd)
    _check("y", yd, yd.shape, yd.dtype)
    _check("dy", dyd, yd.shape, yd.dtype)
    _check("dx", dxd, yd.shape, yd.dtype)
    n = int(np.prod(yd.shape))
    if n == 0:
        return dx
    out = _Outputs(dxd)
    _launch(_relu_backward_kernel(np.dtype(yd.dtype).type), _grid(n, t), t,
            _flat(_device(dyd)), _flat(_device(yd)), n, _flat(out.device[0]))
    out.copy_back()
    return dx
