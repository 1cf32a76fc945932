"""Hand-written kernels, one module per op family and device.

``kernels/cpu/<family>.py`` (Numba ``@njit``) and ``kernels/cuda/<family>.py``
(numba.cuda launchers) export the same names with the same arguments;
:func:`kernels_for` picks one from the array type.
"""
import importlib
import os

from ..backend import is_device_array

_cache = {}
_profiler = None


def kernels_for(family, array):
    """The kernel module of ``family`` for ``array``'s device (cpu or cuda)."""
    device = "cuda" if is_device_array(array) else "cpu"
    key = (device, family)
    mod = _cache.get(key)
    if mod is None:
        mod = importlib.import_module(f"tinynorm.kernels.{device}.{family}")
        _cache[key] = mod
    if _profiler is not None:
        return _profiler.kernels(mod, family if device == "cpu" else f"cuda.{family}")
    return mod


def compiled_cache_present():
    """True when Numba's on-disk cache already holds tinynorm's CPU kernels."""
    folder = os.path.join(os.path.dirname(__file__), "cpu", "__pycache__")
    try:
        return any(name.endswith(".nbi") for name in os.listdir(folder))
    except OSError:
        return False
