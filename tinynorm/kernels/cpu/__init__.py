"""Numba CPU kernels.

Idle OpenMP workers spin by default. On 2 cores, Numba's OpenMP workers
spinning after a parallel kernel and OpenBLAS's workers waiting inside the
next GEMM took the cores from each other: a CNN training step ran 8x slower.
Numba's ``workqueue`` layer avoids that but its parallel kernels ran 2-3x
slower. So ``import tinynorm`` keeps Numba's default layer and sets
``GOMP_SPINCOUNT=0`` (workers sleep at once) unless the user set it or
``OMP_WAIT_POLICY``; it takes effect if Numba has not started OpenMP yet.
Kernels below about a million elements run serially anyway.
"""
import os


def _quiet_openmp_workers():
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = "0"


_quiet_openmp_workers()
