"""ReLU forward and backward kernels for CUDA (numba.cuda), mirroring kernels/cpu/activation.py.

    y  = x if not (x <= 0) else 0      (a NaN stays NaN, -0.0 becomes +0.0)
    dx = dy if y > 0 else 0            (a NaN in y gives 0)

Same functions, arguments and meaning as tinynorm.kernels.cpu.activation, plus
a keyword ``threads`` (threads per block, a power of two up to 1024). One
thread per element, grid-stride.
"""
import numpy as np
from numba import cuda

from .host import (Outputs as _Outputs, as_array as _as_array, c_contiguous as _c_contiguous,
                   device_input as _device_input, flat as _flat, grid as _grid, launch as _launch,
                   per_dtype as _per_dtype, threads_or_default as _threads)


@_per_dtype
def _relu_kernel(cast):
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


@_per_dtype
def _relu_backward_kernel(cast):
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


def _check(name, a, shape, dtype):
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(a.shape)}, expected {tuple(shape)}")
    if np.dtype(a.dtype) != np.dtype(dtype):
        raise TypeError(f"{name} has dtype {a.dtype}, expected {np.dtype(dtype)}")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
    if not _c_contiguous(a):
        raise ValueError(f"{name} must be C-contiguous")


def _elementwise(kernel, ref, inputs, output, threads):
    """Launch ``kernel(dtype)`` over ``(*inputs, n, output)``, all flat, one thread per element.

    ``inputs`` and ``output`` are (name, array) pairs; NumPy inputs are made contiguous, and each
    array, ``ref`` (an input's name) first, must have ref's shape and float dtype.
    """
    t = _threads(threads)
    arrays = {}
    for name, a in inputs:
        a = _as_array(a)
        arrays[name] = np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a
    out_name, out = output[0], _as_array(output[1])
    r = arrays[ref]
    for name in [ref] + [name for name in arrays if name != ref]:
        _check(name, arrays[name], r.shape, r.dtype)
    _check(out_name, out, r.shape, r.dtype)
    n = int(np.prod(r.shape))
    if n == 0:
        return
    outs = _Outputs(out)
    _launch(kernel(np.dtype(r.dtype).type), _grid(n, t), t,
            *(_flat(_device_input(a)) for a in arrays.values()), n, _flat(outs.device[0]))
    outs.copy_back()


def relu_forward(x, y, threads=None):
    """``y = max(x, 0)`` for C-contiguous ``x`` and ``y`` of one float dtype; returns y."""
    _elementwise(_relu_kernel, "x", [("x", x)], ("y", y), threads)
    return y


def relu_backward(dy, y, dx, threads=None):
    """``dx = dy`` where ``y > 0``, else 0; returns dx."""
    _elementwise(_relu_backward_kernel, "y", [("dy", dy), ("y", y)], ("dx", dx), threads)
    return dx
