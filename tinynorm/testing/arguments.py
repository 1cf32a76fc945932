"""The one argument check of the gradient-testing kit: ``gradcheck``, ``gradgradcheck`` and
``check_op`` refuse a call that would fail inside NumPy or hypothesis, or check nothing."""
import math
import numbers
import operator

import numpy as np

from .. import dtypes as _dtypes
from ..backend import to_numpy
from ..device import device as _device
from ..tensor import Tensor


def function(fn, who, name="fn"):
    if not callable(fn):
        raise TypeError(f"{who}: {name} must be callable, got {type(fn).__name__} {fn!r}")
    return fn


def output(out, who):
    """What ``fn`` returned, which must be one Tensor."""
    if not isinstance(out, Tensor):
        raise TypeError(f"{who}: fn must return one Tensor, got {type(out).__name__} "
                        f"{out!r:.60}")
    return out


def positive(value, name, who, zero=False):
    """A finite real ``value`` > 0 (>= 0 with ``zero``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who}: {name} must be a real number, got {type(value).__name__} "
                        f"{value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ValueError(f"{who}: {name} must be finite and {bound}, got {value!r}")
    return float(value)


def tolerances(who, **values):
    for name, value in values.items():
        positive(value, name, who, zero=True)


def arrays(inputs, who):
    """``inputs``, a non-empty list or tuple of real arrays, Tensors or numbers (0-d), as float64
    arrays."""
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"{who}: inputs must be a list or tuple of arrays or Tensors (one per "
                        f"argument of fn), got {type(inputs).__name__}")
    if not inputs:
        raise ValueError(f"{who}: inputs is empty; fn needs at least one input to differentiate")
    out = []
    for i, x in enumerate(inputs):
        if not isinstance(x, (np.ndarray, Tensor, np.generic, numbers.Real)) or \
                isinstance(x, bool):
            raise TypeError(f"{who}: inputs[{i}] must be an array, a Tensor or a number, got "
                            f"{type(x).__name__}")
        data = to_numpy(x)
        if np.asarray(data).dtype.kind not in "iuf":
            raise TypeError(f"{who}: inputs[{i}] must hold real numbers, got "
                            f"{np.asarray(data).dtype}")
        out.append(np.array(data, dtype=np.float64))
    return out


def indices(wrt, count, who):
    """``wrt`` as a list of indices into ``count`` arguments: None for all, Python's negative
    indices, each at most once. ``count`` None checks the types and duplicates only."""
    if wrt is None:
        return None if count is None else list(range(count))
    if not isinstance(wrt, (list, tuple, range)):
        raise TypeError(f"{who}: wrt must be a list of argument indices, got "
                        f"{type(wrt).__name__} {wrt!r}")
    if not len(wrt):
        raise ValueError(f"{who}: wrt is empty, so no gradient would be checked")
    out = []
    for i in wrt:
        if isinstance(i, bool):
            raise TypeError(f"{who}: wrt entries must be ints, got bool {i!r}")
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"{who}: wrt entries must be ints, got {type(i).__name__} "
                            f"{i!r}") from None
        if count is not None:
            if not -count <= i < count:
                raise IndexError(f"{who}: wrt index {i} is out of range for {count} inputs")
            i %= count
        out.append(i)
    if len(set(out)) != len(out):
        raise ValueError(f"{who}: wrt names an input more than once: {list(wrt)}")
    return out


def finite_difference_call(who, fn, inputs, wrt, eps, atol, rtol):
    """The arguments of gradcheck and gradgradcheck checked: the inputs as float64 arrays and the
    indices of those to check."""
    function(fn, who)
    values = arrays(inputs, who)
    wrt = indices(wrt, len(values), who)
    positive(eps, "eps", who)
    tolerances(who, atol=atol, rtol=rtol)
    return values, wrt


def float_dtypes(values, who):
    """``dtypes`` of check_op through :func:`tinynorm.dtypes.parameter` (float32 or float64)."""
    if isinstance(values, (str, np.dtype, type)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{who}: dtypes must be a tuple of dtypes, got {values!r}")
    out = tuple(_dtypes.parameter(d, f"{who}: dtypes") for d in values)
    if not out:
        raise ValueError(f"{who}: dtypes is empty")
    return out


def devices(values, who):
    if isinstance(values, str) or not hasattr(values, "__iter__"):
        raise TypeError(f"{who}: devices must be a tuple of device names, got {values!r}")
    out = tuple(_device(d).type for d in values)
    if not out:
        raise ValueError(f"{who}: devices is empty")
    return out


def strategy(inputs, who):
    """check_op's ``inputs``: a hypothesis strategy, or a non-empty tuple of them (one per
    argument), as one strategy."""
    from hypothesis import strategies as st
    from hypothesis.strategies import SearchStrategy
    if isinstance(inputs, SearchStrategy):
        return inputs
    if not isinstance(inputs, (list, tuple)):
        raise TypeError(f"{who}: inputs must be a hypothesis strategy or a tuple of strategies "
                        f"(one per argument of fn), got {type(inputs).__name__}")
    if not inputs:
        raise ValueError(f"{who}: inputs is empty; fn needs at least one argument")
    for i, s in enumerate(inputs):
        if not isinstance(s, SearchStrategy):
            raise TypeError(f"{who}: inputs[{i}] must be a hypothesis strategy, got "
                            f"{type(s).__name__}")
    return st.tuples(*inputs)


def count(value, name, who):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    return int(value)


def targets(wrt, args, floats, who):
    """The float arguments whose gradients check_op checks: all of them, or ``wrt``, each of
    which must name one."""
    if wrt is None:
        return floats
    out = indices(wrt, len(args), who)
    for i in out:
        if i not in floats:
            raise ValueError(f"{who}: wrt index {i} names argument {i}, a "
                             f"{type(args[i]).__name__} that is not a float array, so it has "
                             "no gradient to check")
    return out
