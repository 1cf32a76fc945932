"""Argument checks shared by every public op, module and the CLI.

Each check is written as ``not (low <= value <= high)`` so that NaN, which
fails every comparison, fails the check too; bools are not numbers here.
"""
import math
import numbers

import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _is_real(value):
    kind = type(value)
    if kind is float or kind is int:
        return True
    return isinstance(value, numbers.Real) and kind is not bool


def number(value, name, low=None, high=None, *, low_open=False, high_open=False):
    """Return ``float(value)`` after checking that it is a finite real number in the given range."""
    if not _is_real(value):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    above = low is None or (value > low if low_open else value >= low)
    below = high is None or (value < high if high_open else value <= high)
    if not (above and below):
        if low is not None and high is not None:
            span = f"lie in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        elif low is not None:
            span = f"be {'>' if low_open else '>='} {low}"
        else:
            span = f"be {'<' if high_open else '<='} {high}"
        raise ValueError(f"{name} must {span}, got {value!r}")
    return float(value)


def integer(value, name, low=None):
    """Return ``int(value)`` after checking that it is an integer (not a bool) >= ``low``."""
    if type(value) is int and (low is None or value >= low):
        return value
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or (
            low is not None and value < low):
        what = ("a positive integer" if low == 1 else "an integer" if low is None
                else f"an integer >= {low}")
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def eps(value, name="eps"):
    """The one rule for every norm's eps: a finite number >= 0 (a negative eps can make var + eps negative)."""
    return number(value, name, 0.0)


def ints(value, n, name, low):
    """``value`` (an int, or a sequence of 1 or ``n`` ints, as PyTorch takes) as a tuple of ``n`` ints >= ``low``."""
    items = (value,) if isinstance(value, numbers.Integral) else value
    try:
        items = tuple(items)
    except TypeError:
        raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {value!r}") from None
    if len(items) == 1:
        items = items * n
    if len(items) != n or not all(isinstance(i, numbers.Integral) and not isinstance(i, bool)
                                  for i in items):
        raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    if any(i < low for i in items):
        what = "positive" if low == 1 else f">= {low}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return tuple(int(i) for i in items)


def normalized_shape(value, name="normalized_shape"):
    """An int or a sequence of ints >= 0 (the trailing axes a LayerNorm or RMSNorm normalizes) as a tuple."""
    items = (value,) if isinstance(value, numbers.Integral) else value
    try:
        items = tuple(items)
    except TypeError:
        raise ValueError(f"{name} must be an int or a sequence of ints, got {value!r}") from None
    return tuple(integer(d, name, 0) for d in items)


def momentum(value, name="momentum"):
    """A running-average factor in [0, 1] (``None``, a cumulative average, is the caller's to allow)."""
    return number(value, name, 0.0, 1.0)


_TENSOR = []


def _tensor_class():
    """tinynorm.Tensor, imported on first use (tensor.py imports this module); an import
    statement inside a function costs microseconds on every call."""
    if not _TENSOR:
        from .tensor import Tensor
        _TENSOR.append(Tensor)
    return _TENSOR[0]


def param(t, shape, what, name):
    """Check an optional weight, bias or running statistic: float32/float64 and of ``shape``.

    Integer running statistics would be truncated by the in-place update, so they are refused
    with the rest.
    """
    if t is None:
        return
    Tensor = _tensor_class()
    if isinstance(t, Tensor) and t.data.dtype in _FLOATS and t.data.shape == shape:
        return
    from .backend import check_float_dtype
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: {what} must be a Tensor, got {type(t).__name__}")
    check_float_dtype(t.data, f"{name}: {what}")
    if tuple(t.shape) != tuple(shape):
        extra = f" for {shape[0]} channels" if len(shape) == 1 else ""
        raise ValueError(f"{name}: {what} has shape {tuple(t.shape)}, expected {tuple(shape)}{extra}")


def lrn_args(size, alpha, beta, k):
    """Local response norm's (size, alpha, beta, k): a positive integer window and finite numbers."""
    return (integer(size, "local_response_norm: size", 1),
            *(number(v, f"local_response_norm: {n}") for n, v in
              (("alpha", alpha), ("beta", beta), ("k", k))))
