"""Host-side helpers shared by the CUDA launchers: kernel caches, block sizes, argument checks,
device views.

Launchers accept NumPy arrays (copied to the device, outputs copied back) or
device arrays (Numba device arrays, or anything with __cuda_array_interface__
such as CuPy arrays; used in place), so the simulator tests and real GPUs
share one code path.
"""
import functools

import numpy as np
from numba import cuda, from_dtype

from ...backend import is_cupy_array
from .launch import current_stream, launch  # noqa: F401  (launchers import them from here)

DEFAULT_THREADS = 256


def threads_or_default(threads):
    """The block size: ``threads`` (a power of two in [1, 1024]) or DEFAULT_THREADS."""
    t = DEFAULT_THREADS if threads is None else int(threads)
    assert 1 <= t <= 1024 and t & (t - 1) == 0, \
        f"threads must be a power of two in [1, 1024], got {threads}"
    return t


def per_dtype(build):
    """A kernel factory cached per ``(dtype, *args)``: ``build(cast, *args)`` returns the kernel,
    ``cast`` converting to ``dtype`` inside it."""
    @functools.lru_cache(maxsize=None)
    def factory(dtype, *args):
        return build(from_dtype(np.dtype(dtype)), *args)

    factory.__name__ = factory.__qualname__ = build.__name__
    factory.__doc__ = build.__doc__
    return factory


def as_array(a):
    """``a`` itself if it is an array (or None), else its device view."""
    if a is None or isinstance(a, np.ndarray) or hasattr(a, "reshape"):
        return a
    return cuda.as_cuda_array(a)


def check(name, a, shape, dtype):
    """Assert ``a`` (skipped when None) has this shape and dtype."""
    if a is None:
        return
    assert tuple(a.shape) == tuple(shape), f"{name}: shape {a.shape}, expected {tuple(shape)}"
    assert np.dtype(a.dtype) == np.dtype(dtype), f"{name}: dtype {a.dtype}, expected {dtype}"


def check_input(name, a, axes, *others):
    """``a``'s shape as ints, after asserting it is float32 or float64 with the axes named in
    ``axes`` (e.g. "N, C, S") and that each ``(name, b)`` of ``others`` (None skipped) has its
    shape and dtype."""
    ndim = axes.count(",") + 1
    assert len(a.shape) == ndim, f"{name} must be {ndim}-D ({axes}), got shape {a.shape}"
    assert np.dtype(a.dtype) in (np.float32, np.float64), f"unsupported dtype {a.dtype}"
    for other, b in others:
        check(other, b, a.shape, a.dtype)
    return tuple(int(v) for v in a.shape)


def check_vectors(shape, *vectors):
    """Assert each ``(name, v)`` (None skipped) is float64 of ``shape``."""
    for name, v in vectors:
        check(name, v, shape, np.float64)


def flat(a):
    return a.reshape(int(np.prod(a.shape)))


def device_input(a):
    """Device view of an input (NumPy arrays are copied to the device)."""
    if isinstance(a, np.ndarray):
        assert a.flags.c_contiguous, "arrays must be C-contiguous"
        return cuda.to_device(a)
    return a


class Outputs:
    """Device views of outputs (None stays None); NumPy outputs get a device buffer copied back by
    ``copy_back``."""

    def __init__(self, *arrays):
        self._pairs = []
        self.device = []
        for a in arrays:
            if isinstance(a, np.ndarray):
                assert a.flags.c_contiguous, "arrays must be C-contiguous"
                d = cuda.device_array(a.shape, a.dtype)
                self._pairs.append((d, a))
            else:
                d = a
            self.device.append(d)

    def copy_back(self):
        for d, host in self._pairs:
            d.copy_to_host(host)


def grid(size, threads, max_blocks=4096):
    """Blocks for a grid-stride loop over ``size`` items."""
    return max(1, min(max_blocks, -(-size // threads)))


def workspace(shape, dtype, like):
    """An uninitialized device array: from CuPy's pool when ``like`` is a CuPy array, else Numba's."""
    if is_cupy_array(like):
        import cupy
        return cupy.empty(shape, dtype=dtype)
    return cuda.device_array(shape, dtype)


def filled(a, size, value, like):
    """``a`` as a device array, or ``size`` float64 copies of ``value`` on ``like``'s device."""
    if a is not None:
        return device_input(a)
    if is_cupy_array(like):
        import cupy
        return cupy.full(size, value, dtype=np.float64)
    return cuda.to_device(np.full(size, value))


def c_contiguous(a):
    """Whether ``a`` (NumPy, CuPy or Numba device array) is C-contiguous."""
    if isinstance(a, np.ndarray):
        return a.flags.c_contiguous
    f = getattr(a, "is_c_contiguous", None)
    if f is not None:
        return f()
    return a.flags.c_contiguous


def contiguous_device(a):
    """A C-contiguous device view of ``a``: NumPy arrays are copied over; device arrays must be
    contiguous already."""
    if isinstance(a, np.ndarray):
        return device_input(np.ascontiguousarray(a))
    if not c_contiguous(a):
        raise ValueError("device arrays must be C-contiguous")
    return a
