"""Matrix products that share Numba's thread pool instead of starting OpenBLAS's.

On a small machine two thread pools fight: OpenBLAS's idle workers spin
after each GEMM and take the cores that the next parallel Numba kernel needs
(on 2 cores a CNN training step ran several times slower). So tinynorm calls NumPy's
bundled OpenBLAS (ILP64 CBLAS, found through ctypes) with one BLAS thread
per call and splits a product's output columns across Numba's threads
(:mod:`tinynorm.kernels.cpu.gemm`). Where that library is not found, or the
operands do not fit (not float32/float64, not row-major or a transpose of
it), this is NumPy's ``matmul``.
"""
import contextlib
import ctypes
import re

import numpy as np

from . import kernels as _kernels
from . import buffer_pool

PARALLEL_MIN_FLOPS = 1 << 23
"""Products below this many flops run as one single-threaded BLAS call through NumPy."""

_i64, _i32 = ctypes.c_int64, ctypes.c_int


def _load():
    try:
        with open("/proc/self/maps") as f:
            paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", f.read())))
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_", "64_"), ("", "64_")):
            names = [f"{prefix}cblas_sgemm{suffix}", f"{prefix}cblas_dgemm{suffix}",
                     f"{prefix}openblas_set_num_threads{suffix}", f"{prefix}openblas_get_num_threads{suffix}"]
            if all(hasattr(lib, n) for n in names):
                out = {}
                for dtype, name, real in ((np.float32, names[0], ctypes.c_float),
                                          (np.float64, names[1], ctypes.c_double)):
                    proto = ctypes.CFUNCTYPE(None, _i32, _i32, _i32, _i64, _i64, _i64, real, _i64, _i64,
                                             _i64, _i64, real, _i64, _i64)
                    out[np.dtype(dtype)] = proto(ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)
                return out, getattr(lib, names[2]), getattr(lib, names[3])
    return None


_found = _load()


def _layout(m):
    """(CBLAS transpose flag, leading dimension) of a 2-D operand, or None."""
    from .kernels.cpu.gemm import NO_TRANS, TRANS
    item = m.itemsize
    if m.strides[1] == item and m.strides[0] >= item * max(m.shape[1], 1) and m.strides[0] % item == 0:
        return NO_TRANS, m.strides[0] // item
    if m.strides[0] == item and m.strides[1] >= item * max(m.shape[0], 1) and m.strides[1] % item == 0:
        return TRANS, m.strides[1] // item
    return None


def _gemm2d(a, b, out, fn):
    from numba import get_num_threads
    from .kernels.cpu import gemm
    la, lb = _layout(a), _layout(b)
    if la is None or lb is None:
        np.matmul(a, b, out=out)
        return
    m, k = a.shape
    n = b.shape[1]
    dt = a.dtype.type
    gemm.gemm_columns(fn, la[0], lb[0], m, n, k, dt(1), a, la[1], b, lb[1], dt(0), out, n,
                               get_num_threads())


class _Threads:
    """OpenBLAS held to ``n`` threads while the block runs (nothing to do where it was not found).
    A class rather than a generator: it wraps every small product of a training step."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.previous = self.n if _found is None else _found[2]()
        if self.previous != self.n:
            _found[1](self.n)

    def __exit__(self, *exc):
        if self.previous != self.n:
            _found[1](self.previous)
        return False


def threads(n):
    """A context manager holding OpenBLAS to ``n`` threads (see :class:`_Threads`)."""
    return _Threads(n)


def one_thread():
    """``threads(1)``: the products that Numba's threads split, or that a Numba kernel calls."""
    return _Threads(1)


@contextlib.contextmanager
def one_thread_gemm(dtype):
    """The CBLAS ``?gemm`` of ``dtype`` for Numba kernels to call (None where OpenBLAS was not
    found or the dtype is not float32/float64), with OpenBLAS held to one thread meanwhile."""
    if _found is None or np.dtype(dtype) not in _found[0]:
        yield None
        return
    with one_thread():
        yield _found[0][np.dtype(dtype)]


def matmul(a, b):
    """``a @ b``; NumPy operands of rank 2 or 3 (equal batch) go through Numba's threads.

    Other NumPy operands still run with OpenBLAS held to one thread.
    """
    if _kernels._profiler is not None:
        return _kernels._profiler.call("kernel:blas.matmul", _matmul, a, b)
    return _matmul(a, b)


def _matmul(a, b):
    if _found is None or not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray):
        return a @ b
    fns = _found[0]
    with one_thread():
        if (a.dtype != b.dtype or a.dtype not in fns or a.ndim != b.ndim or a.ndim not in (2, 3)
                or (a.ndim == 3 and a.shape[0] != b.shape[0]) or a.shape[-1] != b.shape[-2]
                or 0 in a.shape or 0 in b.shape
                or 2 * a.size * b.shape[-1] < PARALLEL_MIN_FLOPS):
            return a @ b
        out = buffer_pool.empty(np, a.shape[:-1] + b.shape[-1:], a.dtype)
        if a.ndim == 2:
            _gemm2d(a, b, out, fns[a.dtype])
        else:
            for g in range(a.shape[0]):
                _gemm2d(a[g], b[g], out[g], fns[a.dtype])
        return out
