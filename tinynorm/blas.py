"""Matrix products that keep OpenBLAS's thread pool out of the way of Numba's.

On a small machine two thread pools fight: OpenBLAS's idle workers spin
after each GEMM and take the cores that the next parallel Numba kernel needs
(on 2 cores a CNN step ran 10x slower). tinynorm therefore runs GEMMs below
``THREADED_MIN_FLOPS`` on one BLAS thread and does its own parallel work in
Numba; big GEMMs keep BLAS's threads. The switch is NumPy's bundled OpenBLAS's
``*_set_num_threads`` (found through ctypes); without it this is plain matmul.
"""
import ctypes
import re

import numpy as np

THREADED_MIN_FLOPS = 1 << 28


def _openblas_thread_controls():
    try:
        with open("/proc/self/maps") as f:
            paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", f.read())))
    except OSError:
        return None, None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", "_64", ""):
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    return setter, getter
    return None, None


_set_threads, _get_threads = _openblas_thread_controls()


def matmul(a, b):
    """``a @ b``; NumPy products smaller than THREADED_MIN_FLOPS run on one BLAS thread."""
    if _set_threads is None or not isinstance(a, np.ndarray) or a.ndim < 2 or b.ndim < 2:
        return a @ b
    batch = 1
    for d in np.broadcast_shapes(a.shape[:-2], b.shape[:-2]):
        batch *= d
    if 2 * batch * a.shape[-2] * a.shape[-1] * b.shape[-1] >= THREADED_MIN_FLOPS:
        return a @ b
    previous = _get_threads()
    if previous == 1:
        return a @ b
    _set_threads(1)
    try:
        return a @ b
    finally:
        _set_threads(previous)
