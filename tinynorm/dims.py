"""The one place a ``dim`` argument becomes an axis: PyTorch's range, types and messages."""
import numpy as np


def dim(d, ndim, name, *, extra=0):
    """``d`` as a non-negative axis of an ``ndim``-d tensor.

    ``extra=1`` is for ops that add an axis (stack, unsqueeze): their range is that of an
    ``ndim + 1``-d result. A 0-d tensor takes 0 and -1, as in PyTorch.
    """
    if type(d) is not int and (isinstance(d, bool) or not isinstance(d, (int, np.integer))):
        raise TypeError(f"{name}: dim must be an int, got {type(d).__name__} {d!r}")
    n = max(ndim + extra, 1)
    if not -n <= d < n:
        raise IndexError(f"{name}: Dimension out of range (expected to be in range of "
                         f"[{-n}, {n - 1}], but got {d})")
    return int(d) % n


def dims(ds, ndim, name):
    """An int, a sequence of ints, or ``None`` or an empty sequence (every axis, as PyTorch's
    sum and mean read them), as a sorted tuple of distinct axes (a 0-d tensor's 0 or -1 names no
    axis of its array)."""
    if ds is None or (isinstance(ds, (tuple, list)) and not ds):
        return tuple(range(ndim))
    items = ds if isinstance(ds, (tuple, list)) else (ds,)
    out = tuple(dim(d, ndim, name) for d in items)
    if ndim == 0:
        return ()
    if len(set(out)) != len(out):
        repeated = next(d for d in out if out.count(d) > 1)
        raise RuntimeError(f"{name}: dim {repeated} appears multiple times in the list of dims")
    return tuple(sorted(out))
