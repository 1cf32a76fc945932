"""GEMM split over output columns across Numba's threads, each part one BLAS call.

A training step then has one thread pool: Numba's workers run both the
normalization kernels and the GEMMs (OpenBLAS itself runs single-threaded
inside each part), so no second pool spins against the first.
``fn`` is a CBLAS ``?gemm`` (ILP64) passed as a ctypes function; the kernel
takes raw addresses, so row-major operands and their transposes both fit.
"""
from numba import prange

from .jit import serial_and_parallel

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def _gemm_columns_body(fn, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, itemsize, parts):
    for t in prange(parts):
        n0 = N * t // parts
        n1 = N * (t + 1) // parts
        if n1 > n0:
            b_off = n0 * itemsize if tb == NO_TRANS else n0 * ldb * itemsize
            fn(ROW_MAJOR, ta, tb, M, n1 - n0, K, alpha, a, lda, b + b_off, ldb, beta,
               c + n0 * itemsize, ldc)


gemm_columns_serial, gemm_columns_parallel = serial_and_parallel(_gemm_columns_body)
