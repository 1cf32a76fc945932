"""Kernel launches on CuPy's current stream, with a low-overhead path for CuPy arrays.

``kernel[blocks, threads, stream](*args)`` through Numba's dispatcher types
each CuPy argument's ``__cuda_array_interface__`` and prepares ctypes
arguments on every launch, which can outlast a memory-bound kernel. The fast
path compiles the kernel once per argument-type signature through Numba,
loads Numba's cubin into a CuPy module and launches it with CuPy, passing
each argument as Numba's kernel ABI lays it out: an array of ndim k is the
5 + 2k parameters

    meminfo (0), parent (0), nitems, itemsize, data pointer, shape[k], strides[k]

and a scalar is one parameter of its Numba type (int -> int64, float -> float64).

The fast path is taken only on a real GPU when every array argument is a CuPy
ndarray; anything else (NumPy arrays, Numba device arrays, the simulator,
``TINYNORM_FAST_LAUNCH=0``) goes through Numba's own launch.
"""
import os
import warnings

import numpy as np
from numba import config, cuda, types
from numba.np.numpy_support import from_dtype

FAST_LAUNCH = os.environ.get("TINYNORM_FAST_LAUNCH", "1") != "0"

_streams = {}
_compiled = {}
_fast_count = [0]
_ndarray = None


def current_stream():
    """CuPy's current stream as a Numba stream; 0 (the default) under the simulator or without CuPy."""
    if config.ENABLE_CUDASIM:
        return 0
    try:
        import cupy
    except ImportError:
        return 0
    ptr = cupy.cuda.get_current_stream().ptr
    if ptr == 0:
        return 0
    s = _streams.get(ptr)
    if s is None:
        s = _streams[ptr] = cuda.external_stream(ptr)
    return s


def _cupy_ndarray():
    global _ndarray
    if _ndarray is None:
        try:
            import cupy
            _ndarray = cupy.ndarray
        except ImportError:
            _ndarray = type(None)
    return _ndarray


_SCALARS = {int: (types.int64, np.int64), float: (types.float64, np.float64),
            np.int64: (types.int64, np.int64), np.int32: (types.int32, np.int32),
            np.float64: (types.float64, np.float64), np.float32: (types.float32, np.float32)}


def _signature(args, ndarray):
    """Numba argument types of ``args``, or None when one is not a CuPy array or a plain scalar."""
    sig = []
    for a in args:
        if isinstance(a, ndarray):
            layout = "C" if a.flags.c_contiguous else "A"
            sig.append((a.dtype.char, a.ndim, layout))
        else:
            s = _SCALARS.get(type(a))
            if s is None:
                return None
            sig.append(type(a))
    return tuple(sig)


def _numba_types(sig):
    out = []
    for s in sig:
        if isinstance(s, tuple):
            char, ndim, layout = s
            out.append(types.Array(from_dtype(np.dtype(char)), ndim, layout))
        else:
            out.append(_SCALARS[s][0])
    return tuple(out)


def _load(kernel, sig):
    """A CuPy function running Numba's compilation of ``kernel`` for ``sig``."""
    import cupy
    compiled = kernel.compile(_numba_types(sig))
    library = compiled._codelibrary
    cubin = library.get_cubin()
    cubin = getattr(cubin, "code", cubin)
    if isinstance(cubin, (str, os.PathLike)):
        with open(cubin, "rb") as f:
            cubin = f.read()
    module = cupy.cuda.function.Module()
    module.load(bytes(cubin))
    name = getattr(library, "_entry_name", None) or compiled.entry_name
    return module, module.get_function(name)


def _pack(args, ndarray):
    out = []
    zero = np.intp(0)
    for a in args:
        if isinstance(a, ndarray):
            out += [zero, zero, np.int64(a.size), np.int64(a.itemsize), np.uint64(a.data.ptr)]
            out += [np.int64(v) for v in a.shape]
            out += [np.int64(v) for v in a.strides]
        else:
            out.append(_SCALARS[type(a)][1](a))
    return out


def launch(kernel, blocks, threads, *args):
    """Run ``kernel`` over ``blocks`` x ``threads`` on CuPy's current stream; never synchronizes."""
    if FAST_LAUNCH and not config.ENABLE_CUDASIM:
        ndarray = _cupy_ndarray()
        if any(isinstance(a, ndarray) for a in args):
            sig = _signature(args, ndarray)
            if sig is not None:
                key = (kernel, sig)
                entry = _compiled.get(key)
                if entry is None:
                    try:
                        entry = _load(kernel, sig)
                    except Exception as e:  # noqa: BLE001 - any failure falls back to Numba's launch
                        warnings.warn(f"tinynorm: fast CUDA launch unavailable ({type(e).__name__}: "
                                      f"{e}); using Numba's launch", RuntimeWarning, stacklevel=2)
                        entry = False
                    _compiled[key] = entry
                if entry:
                    import cupy
                    grid = tuple(int(b) for b in blocks) if isinstance(blocks, tuple) else (int(blocks),)
                    entry[1](grid, (int(threads),), _pack(args, ndarray),
                             stream=cupy.cuda.get_current_stream())
                    _fast_count[0] += 1
                    return
    kernel[blocks, threads, current_stream()](*args)


def fast_launches():
    """How many launches have gone through the fast path so far (for tests: compare before/after)."""
    return _fast_count[0]
