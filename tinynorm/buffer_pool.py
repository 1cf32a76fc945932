"""The one place where ops allocate large host arrays: a small buffer pool.

Fresh pages cost more than a memory-bound kernel (the OS maps and zeroes
them on first touch), so big outputs are carved from pooled byte buffers.
A pooled buffer is free again once nothing but the pool refers to it: every
view of it keeps it alive through ``.base``, so ``sys.getrefcount`` tells.
"""
import os
import sys

import numpy as np

MIN_POOLED_BYTES = 1 << 20
POOL_LIMIT_BYTES = int(os.environ.get("TINYNORM_POOL_BYTES", 2 << 30))

_buckets = {}
_pooled = [0]


def empty(xp, shape, dtype):
    """An uninitialized C-contiguous array of module ``xp``; NumPy ones reuse free pooled buffers."""
    if xp is not np:
        return xp.empty(shape, dtype=dtype)
    dtype = np.dtype(dtype)
    count = 1
    for s in shape:
        count *= s
    nbytes = count * dtype.itemsize
    if nbytes < MIN_POOLED_BYTES:
        return np.empty(shape, dtype)
    bucket = _buckets.setdefault(nbytes, [])
    for base in bucket:
        if sys.getrefcount(base) == 3:
            return base.view(dtype).reshape(shape)
    if _pooled[0] + nbytes > POOL_LIMIT_BYTES:
        return np.empty(shape, dtype)
    base = np.empty(nbytes, np.uint8)
    bucket.append(base)
    _pooled[0] += nbytes
    return base.view(dtype).reshape(shape)

