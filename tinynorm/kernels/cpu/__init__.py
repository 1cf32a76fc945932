"""Numba CPU kernels.

Numba's default OpenMP layer leaves its workers spinning after a parallel
region, where they fight BLAS threads for the cores: on 2 cores an im2col
followed by a GEMM ran 4-8x slower than its parts. The ``workqueue`` layer
parks its workers, so it is chosen here unless the user picked a layer.
"""
import os

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
