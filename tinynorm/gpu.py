"""The runtime queries that PyTorch names ``torch.cuda``: ``is_available``, ``require``,
``synchronize``. Users reach them as ``tinynorm.cuda`` (the same module object); the kernels
live in :mod:`tinynorm.kernels.cuda`.

On the GPU the array module is CuPy: ``Tensor.to('cuda')`` copies data into
CuPy arrays, generic math runs through CuPy (cuBLAS for matmul) and the
normalization, im2col/col2im, pooling, ReLU and Adam kernels are the
numba.cuda kernels of ``tinynorm.kernels.cuda``, launched on CuPy's current
stream.
"""
import functools


@functools.lru_cache(maxsize=None)
def is_available():
    """True when CuPy imports and sees at least one CUDA device (never under the simulator)."""
    from numba import config
    if config.ENABLE_CUDASIM:
        return False
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no CuPy, no driver or no device all mean "no GPU"
        return False


def require():
    """Raise RuntimeError naming what is missing unless a GPU is usable."""
    if not is_available():
        raise RuntimeError(
            "device 'cuda' needs CuPy and an NVIDIA GPU (pip install -e '.[cuda]' on a machine "
            "with a CUDA driver); none was found")


def synchronize():
    """Wait until every kernel queued on the GPU has finished."""
    require()
    import cupy
    cupy.cuda.get_current_stream().synchronize()
