"""Numba CPU kernels (serial below a size threshold, ``prange`` above it).

Parallel kernels use Numba's own thread pool; tinynorm keeps OpenBLAS's pool
idle for the small GEMMs of a training step (see :mod:`tinynorm.blas`), since
two pools spinning against each other on a small machine cost more than
either saves.
"""
