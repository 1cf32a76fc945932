"""Window geometry shared by the im2col and pooling kernels."""
import numpy as np

from .jit import njit


@njit(inline="always")
def valid_range(off, step, size, n):
    """``[lo, hi)`` of ``k`` in ``[0, n)`` with ``0 <= off + k*step < size``."""
    lo = 0 if off >= 0 else (step - 1 - off) // step
    hi = (size - off + step - 1) // step
    lo = min(lo, n)
    hi = max(min(hi, n), lo)
    return lo, hi


@njit
def tap_ranges(n_out, size, k, s, p, d):
    """Per tap ``t`` of a window: the outputs ``[lo, hi)`` whose tap ``t`` lies in the input."""
    r = np.empty((k, 2), np.int64)
    for t in range(k):
        r[t, 0], r[t, 1] = valid_range(t * d - p, s, size, n_out)
    return r
