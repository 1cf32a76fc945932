"""The one place a ``dtype`` argument becomes a NumPy dtype, for every factory and cast."""
import numpy as np

ACCEPTED = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64",
            "complex64", "complex128")
_CACHE = {}


def parse(dtype, name):
    """``dtype`` (a NumPy dtype or type, a name such as 'float32', Python's float/int/bool, or a
    ``torch.dtype``) as a native-order NumPy dtype of numbers; TypeError naming the accepted ones
    otherwise."""
    try:
        return _CACHE[dtype]
    except (KeyError, TypeError):
        pass
    spec = dtype
    if type(dtype).__module__ == "torch":
        spec = str(dtype).removeprefix("torch.")
    try:
        dt = None if spec is None else np.dtype(spec)
    except (TypeError, ValueError):
        dt = None
    if dt is None or dt.kind not in "biufc" or dt.fields is not None or dt.shape != ():
        raise TypeError(f"{name}: dtype must be one of {', '.join(ACCEPTED)} (a NumPy dtype, its "
                        f"name or a torch.dtype), got {dtype!r}")
    dt = dt.newbyteorder("=")
    try:
        _CACHE[dtype] = dt
    except TypeError:
        pass
    return dt


def parameter(dtype, name):
    """A module's parameter dtype: :func:`parse`, then float32 or float64 (what the kernels take)."""
    dt = parse(dtype, name)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"{name}: dtype: unsupported dtype {dt}; tinynorm kernels take float32 or "
                         "float64")
    return dt
