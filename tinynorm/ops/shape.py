"""Reshape, permute, indexing, concatenation and stacking."""
import numpy as np

from ..autograd import Function, unbroadcast
from ..backend import get_array_module


def check_shape(shape, numel):
    """A reshape target as PyTorch takes it: ints >= -1, at most one -1, the same number of elements."""
    known, inferred, bad_type, negative = 1, 0, False, False
    for d in shape:
        if type(d) is not int and (isinstance(d, bool) or not isinstance(d, (int, np.integer))):
            bad_type = True
        elif d == -1:
            inferred += 1
        elif d < -1:
            negative = True
        else:
            known *= d
    if bad_type:
        raise TypeError(f"reshape: shape must be a sequence of ints, got {tuple(shape)}")
    if negative:
        raise ValueError(f"reshape: invalid shape dimension {min(shape)} in {tuple(shape)} "
                         "(sizes are >= 0, or -1 for the one inferred)")
    if inferred > 1:
        raise ValueError(f"reshape: only one dimension can be inferred (-1), got {tuple(shape)}")
    if (known == 0 or numel % known) if inferred else known != numel:
        raise ValueError(f"reshape: shape {tuple(shape)} is invalid for an input of {numel} elements")


class Reshape(Function):
    def forward(self, a, *, shape):
        check_shape(shape, a.size)
        self.in_shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return g.reshape(self.in_shape)

    def backward_graph(self, g, inputs):
        return g.reshape(tuple(self.in_shape))


class Permute(Function):
    def forward(self, a, *, dims):
        self.dims = dims
        return a.transpose(self.dims)

    def backward(self, g):
        return g.transpose(self._inverse())

    def backward_graph(self, g, inputs):
        return g.permute(tuple(self._inverse()))

    def _inverse(self):
        inverse = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inverse[d] = i
        return inverse


def _is_basic_index(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items)


class GetItem(Function):
    """``a[index]``; repeated advanced indices accumulate their gradients."""

    def forward(self, a, *, index):
        self.in_shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, g):
        return _scatter(g, self.index, self.in_shape)

    def backward_graph(self, g, inputs):
        return IndexScatter.apply(g, index=self.index, shape=self.in_shape)


def _scatter(g, index, shape):
    xp = get_array_module(g)
    out = xp.zeros(shape, dtype=g.dtype)
    if _is_basic_index(index):
        out[index] = g
    else:
        xp.add.at(out, index, g)
    return out


class IndexScatter(Function):
    """``zeros(shape)`` with ``g`` added at ``index``: the adjoint of ``a[index]`` (GetItem's backward on the tape)."""

    def forward(self, g, *, index, shape):
        self.index = index
        return _scatter(g, index, shape)

    def backward(self, u):
        return u[self.index]

    def backward_graph(self, u, inputs):
        return GetItem.apply(u, index=self.index)


class BroadcastTo(Function):
    """``a`` broadcast (and copied) to ``shape``; the backward sums back (Sum and Mean's backward on the tape)."""

    def forward(self, a, *, shape):
        self.in_shape = a.shape
        return get_array_module(a).broadcast_to(a, shape).copy()

    def backward(self, g):
        return unbroadcast(g, self.in_shape)

    def backward_graph(self, g, inputs):
        from ..graph import sum_to
        return sum_to(g, self.in_shape)


class Concat(Function):
    def forward(self, *arrays, dim=0):
        xp = get_array_module(*arrays)
        self.dim = dim
        self.sizes = [a.shape[dim] for a in arrays]
        return xp.concatenate(arrays, axis=dim)

    def backward(self, g):
        xp = get_array_module(g)
        bounds, total = [], 0
        for s in self.sizes[:-1]:
            total += s
            bounds.append(total)
        return tuple(xp.split(g, bounds, axis=self.dim))

    def backward_graph(self, g, inputs):
        out, start = [], 0
        lead = (slice(None),) * (self.dim % g.ndim)
        for s in self.sizes:
            out.append(g[lead + (slice(start, start + s),)])
            start += s
        return tuple(out)


class Stack(Function):
    def forward(self, *arrays, dim=0):
        xp = get_array_module(*arrays)
        self.dim = dim
        return xp.stack(arrays, axis=dim)

    def backward(self, g):
        xp = get_array_module(g)
        n = g.shape[self.dim]
        return tuple(xp.take(g, i, axis=self.dim) for i in range(n))

    def backward_graph(self, g, inputs):
        lead = (slice(None),) * (self.dim % g.ndim)
        return tuple(g[lead + (i,)] for i in range(g.shape[self.dim]))
