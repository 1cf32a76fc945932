"""Numba CPU kernels.

Numba's default OpenMP layer leaves its workers spinning after a parallel
region, where they fight BLAS threads for the cores: on 2 cores a CNN
training step ran 8x slower under it than under the ``workqueue`` layer,
whose workers sleep. ``import tinynorm`` therefore asks for ``workqueue``
unless the user chose a layer (``NUMBA_THREADING_LAYER``) or Numba already
started one.
"""
import os
import sys


def _prefer_workqueue():
    if "NUMBA_THREADING_LAYER" in os.environ:
        return
    numba = sys.modules.get("numba")
    if numba is None:
        os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
    else:
        numba.config.THREADING_LAYER = "workqueue"


_prefer_workqueue()
