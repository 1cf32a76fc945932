"""Host-side helpers shared by the CPU kernel wrappers: argument checks and the parallel split.

The norm wrappers assert (their callers, the ops, have validated user input already);
im2col and pooling raise ValueError/TypeError, since they also serve direct calls.
Mirrors :mod:`tinynorm.kernels.cuda.host`.
"""
import numpy as np


def check(name, a, shape, dtype):
    """Assert ``a`` (skipped when None) is C-contiguous with this shape and dtype."""
    if a is None:
        return
    shape = tuple(shape)
    assert a.shape == shape, f"{name}: shape {a.shape}, expected {shape}"
    assert a.dtype == dtype, f"{name}: dtype {a.dtype}, expected {dtype}"
    assert a.flags.c_contiguous, f"{name}: not C-contiguous"


def check_input(name, x, axes, *others):
    """Assert ``x`` is a C-contiguous float32/float64 array with one axis per letter of
    ``axes`` (``"NCS"``), and every ``(name, array)`` of ``others`` (None skipped) has its
    shape and dtype."""
    assert x.ndim == len(axes), \
        f"{name} must be {len(axes)}-D ({', '.join(axes)}), got shape {x.shape}"
    assert x.dtype in (np.float32, np.float64), f"unsupported dtype {x.dtype}"
    assert x.flags.c_contiguous, f"{name}: not C-contiguous"
    for other, a in others:
        check(other, a, x.shape, x.dtype)


def check_vectors(shape, *named):
    """Assert every ``(name, array)`` (None skipped) is float64 of ``shape``."""
    for name, a in named:
        check(name, a, shape, np.float64)


def parallel_runs(size, parts, min_elements, threads):
    """``(runs, parallel?)``: one serial run below ``min_elements`` values, else one run per
    thread (``threads()``), at most ``parts`` (None: no cap) and at least one."""
    if size < min_elements:
        return 1, False
    n = threads()
    return max(1, n if parts is None else min(n, parts)), True


def per_column(v, dtype, S):
    """A per-plane float64 vector cast to ``dtype``, each value repeated over its S columns
    (the coefficients of a row of the (outer, C*S) view)."""
    v = v.astype(dtype)
    return v if S == 1 else np.repeat(v, S)


def check_float(a, what):
    """Raise TypeError unless ``a`` is float32 or float64; ``what`` opens the message."""
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{what} float32 or float64, got {a.dtype}")


def check_output(name, arr, dtype):
    """Raise unless the output ``arr`` has ``dtype`` and is C-contiguous and writeable
    (its shape is checked by the caller)."""
    if arr.dtype != dtype:
        raise TypeError(f"{name} has dtype {arr.dtype}, expected {dtype}")
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError(f"{name} must be C-contiguous and writeable")
