"""The Adam / AdamW parameter update for CUDA (numba.cuda), mirroring kernels/cpu/adam.py.

Same function, arguments and meaning as tinynorm.kernels.cpu.adam (the update
is in tinynorm/optim/adam.py), plus a keyword ``threads`` (threads per block,
a power of two up to 1024). One thread per element (grid-stride), in place,
in the parameters' dtype as on the CPU: every scalar and g are cast to it
first. Weight decay is applied by the caller. NumPy arrays are copied to the
device and back; device arrays are updated in place.
"""
import math

import numpy as np
from numba import cuda

from .host import (Outputs as _Outputs, as_array as _as_array, c_contiguous as _c_contiguous,
                   device_input as _device_input, flat as _flat, grid as _grid, launch as _launch,
                   per_dtype as _per_dtype, threads_or_default as _threads)


@_per_dtype
def _adam_kernel(cast):
    @cuda.jit
    def kernel(p, g, m, v, n, b1, b2, c1, c2, step_size, bias2_sqrt, eps):
        b1t = cast(b1)
        b2t = cast(b2)
        c1t = cast(c1)
        c2t = cast(c2)
        st = cast(step_size)
        bt = cast(bias2_sqrt)
        et = cast(eps)
        for i in range(cuda.grid(1), n, cuda.gridsize(1)):
            gi = cast(g[i])
            mi = b1t * m[i] + c1t * gi
            vi = b2t * v[i] + c2t * gi * gi
            m[i] = mi
            v[i] = vi
            p[i] -= st * mi / (cast(math.sqrt(vi)) / bt + et)

    return kernel


def adam_update(p, g, m, v, b1, b2, step_size, bias2_sqrt, eps, threads=None):
    """Update ``p``, ``m``, ``v`` (contiguous, one dtype) in place from gradient ``g``.

    ``g`` (same shape; on the device, of any float dtype) is cast to the
    parameters' dtype, as are ``b1``, ``b2``, ``1 - b1``, ``1 - b2``,
    ``step_size``, ``bias2_sqrt`` and ``eps``.
    """
    t = _threads(threads)
    pd, gd, md, vd = map(_as_array, (p, g, m, v))
    dtype = np.dtype(pd.dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"p must be float32 or float64, got {pd.dtype}")
    for name, a in (("p", pd), ("m", md), ("v", vd), ("g", gd)):
        if tuple(a.shape) != tuple(pd.shape):
            raise ValueError(f"{name} has shape {tuple(a.shape)}, expected {tuple(pd.shape)}")
        if name != "g" and np.dtype(a.dtype) != dtype:
            raise TypeError(f"{name} has dtype {a.dtype}, expected {dtype}")
        if name != "g" and not _c_contiguous(a):
            raise ValueError(f"{name} must be C-contiguous")
    if isinstance(gd, np.ndarray):
        gd = np.ascontiguousarray(gd, dtype=dtype)
    elif np.dtype(gd.dtype).kind != "f":
        raise TypeError(f"g must be a float array, got {gd.dtype}")
    elif not _c_contiguous(gd):
        raise ValueError("g must be C-contiguous")
    n = int(np.prod(pd.shape))
    if n == 0:
        return
    out = _Outputs(pd, md, vd)
    for d, host in zip(out.device, (pd, md, vd)):
        if isinstance(host, np.ndarray):
            d.copy_to_device(host)
    if isinstance(gd, np.ndarray):
        gd = _device_input(gd)
    dt = dtype.type
    scalars = (float(dt(s)) for s in (b1, b2, 1 - b1, 1 - b2, step_size, bias2_sqrt, eps))
    _launch(_adam_kernel(dt), _grid(n, t), t, _flat(out.device[0]), _flat(gd),
            _flat(out.device[1]), _flat(out.device[2]), n, *scalars)
    out.copy_back()
