"""``max``/``min``/``argmax``/``argmin`` of a Tensor with PyTorch's overloads, and the
``(values, indices)`` tuple that ``max(dim)`` returns (``torch.return_types.max``)."""
import numpy as np

from . import dims
from .backend import get_array_module


class MinMax(tuple):
    """``(values, indices)`` of ``max(dim)``/``min(dim)``, as PyTorch's ``torch.return_types.max``."""

    def __new__(cls, values, indices):
        return super().__new__(cls, (values, indices))

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]


def arg(t, name, dim, keepdim):
    """``t.argmax(dim)``/``argmin``: int64 indices, no gradient (as PyTorch)."""
    from .tensor import Tensor
    axis = reduced_dim(t, dim, name)
    xp = get_array_module(t.data)
    out = getattr(t.data, name)(axis=axis).astype(np.int64)
    if keepdim:
        out = out.reshape((1,) * t.ndim) if axis is None else xp.expand_dims(out, axis)
    return Tensor(out)


def extremum(t, op, dim, keepdim):
    """``t.max()``, ``t.max(dim)`` (a :class:`MinMax`) or ``t.max(other)`` (elementwise), all on
    the tape; ``op`` is 'max' or 'min'."""
    from .ops import math
    from .tensor import Tensor
    if isinstance(dim, Tensor):
        return t.maximum(dim) if op == "max" else -((-t).maximum(-dim))
    axis = reduced_dim(t, dim, op)
    if axis is None:
        return math.ExtremumAll.apply(t, op=op)
    if t.ndim == 0:
        return MinMax(t.clone(), Tensor(np.zeros((), np.int64)))
    found = {}
    values = math.Extremum.apply(t, op=op, dim=axis, keepdim=bool(keepdim), indices_out=found)
    return MinMax(values, Tensor(found["indices"].astype(np.int64)))


def reduced_dim(t, dim, name):
    """``dim`` checked as PyTorch's max/argmax do: in range, and over a non-empty extent."""
    if dim is not None:
        dim = dims.dim(dim, t.ndim, name)
    if t.data.size == 0 and (dim is None or t.shape[dim] == 0):
        raise IndexError(f"{name}(): cannot reduce an empty extent (input shape "
                         f"{tuple(t.shape)}{'' if dim is None else f', dim {dim}'}): "
                         "it has no maximum")
    return dim
