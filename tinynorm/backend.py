"""Array-module dispatch (Chainer's ``get_array_module``).

Generic math runs through the array module of its inputs: NumPy for host
arrays, CuPy for arrays that expose ``__cuda_array_interface__``.
"""
import numpy as np

_ndarray = np.ndarray


def is_device_array(a):
    """True for an array in GPU memory (anything with ``__cuda_array_interface__``: CuPy or Numba
    device arrays); False for NumPy arrays, scalars and everything else."""
    if type(a) is _ndarray:
        return False
    return hasattr(a, "__cuda_array_interface__") and not isinstance(a, np.ndarray)


def is_cupy_array(a):
    """True for a CuPy array: the device arrays whose workspaces CuPy allocates (a Numba device
    array is a device array too, but its workspaces come from Numba)."""
    return type(a).__module__.split(".")[0] == "cupy"


def get_array_module(*arrays):
    """Return ``numpy`` or ``cupy``, whichever owns the first device array given."""
    for a in arrays:
        if type(a) is not _ndarray and is_device_array(a):
            import cupy
            return cupy
    return np


def to_numpy(a):
    """A host (NumPy) array with ``a``'s values: ``a`` itself unless it lives on the GPU."""
    from .tensor import Tensor
    if isinstance(a, Tensor):
        a = a.data
    if is_device_array(a):
        return a.get()
    return np.asarray(a)


SUPPORTED_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def has_kernel(array):
    """True when tinynorm's kernels compile for ``array``'s dtype (float32, float64). Ops with an
    array-module path take it for other dtypes; ops without one refuse through
    :func:`check_float_dtype`, so no dtype reaches a kernel that was not compiled for it."""
    return array.dtype in SUPPORTED_FLOATS


def check_float_dtype(array, what):
    """Raise ValueError unless ``array`` is float32 or float64."""
    if array.dtype not in SUPPORTED_FLOATS:
        raise ValueError(
            f"{what}: unsupported dtype {array.dtype}; tinynorm kernels take float32 or float64")
