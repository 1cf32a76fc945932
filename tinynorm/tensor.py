"""``Tensor``: an array, an optional ``.grad`` and the tape node that made it."""
import numpy as np

from . import autograd, hooks, versions
from .backend import get_array_module

_DEFAULT_FLOAT = np.dtype(np.float32)
_NUMERIC_KINDS = "biufc"


class Tensor:
    """An n-d array that can record the ops applied to it.

    ``data`` is a NumPy (or CuPy) array; ``grad`` is a Tensor filled by
    :meth:`backward`; ``requires_grad`` marks leaves whose gradient is wanted.
    """

    __array_priority__ = 1000

    def __init__(self, data, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        if not hasattr(data, "dtype"):
            data = _array_from_python(data)
        if data.dtype.kind not in _NUMERIC_KINDS:
            raise ValueError(f"a Tensor holds numbers (bool, integer, float or complex), got an array "
                            f"of dtype {data.dtype}")
        self.data = data
        self.grad = None
        self._node = None
        self._version_counter = versions.VersionCounter()
        self.requires_grad = requires_grad

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if not value and getattr(self, "_node", None) is not None and self._requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables; to use "
                               "a computed tensor without its graph, use y = x.detach()")
        if value and self.data.dtype.kind != "f":
            raise RuntimeError("only Tensors of floating point dtype can require gradients, "
                               f"got {self.data.dtype}")
        self._requires_grad = bool(value)

    @property
    def _version(self):
        return self._version_counter.value

    # ---- inspection -------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def device(self):
        from .device import device
        return device("cuda" if get_array_module(self.data) is not np else "cpu")

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    def dim(self):
        return self.data.ndim

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[_dim(dim, self.ndim, "size")]

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        return len(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"a Tensor with {self.data.size} elements cannot be converted to a "
                             "Python scalar")
        return self.data.item()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def numpy(self):
        if self.device != "cpu":
            raise TypeError("can't convert a cuda tensor to numpy; call .to('cpu') first")
        return self.data

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype, copy=False)

    def tolist(self):
        return self.data.tolist()

    def __repr__(self):
        extra = ", requires_grad=True" if self.requires_grad else ""
        host = self.data if self.device == "cpu" else self.data.get()
        body = np.array2string(np.asarray(host), separator=", ", prefix="tensor(")
        where = ", device='cuda'" if self.device != "cpu" else ""
        return f"tensor({body}, dtype={self.dtype}{where}{extra})"

    # ---- autograd ---------------------------------------------------------
    def backward(self, grad=None, retain_graph=None, create_graph=False):
        """Accumulate the gradient of this tensor into ``.grad`` of the leaves.

        ``create_graph=True`` records the backward pass on the tape, so the
        gradients can be differentiated again; ``retain_graph`` defaults to it.
        """
        autograd.backward(self, grad, retain_graph, create_graph)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor replaces it."""
        return hooks.register_tensor_hook(self, hook)

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in ``.grad`` (a no-op on leaves)."""
        hooks.retain_grad(self)

    @property
    def retains_grad(self):
        return hooks.retains_grad(self)

    def detach(self):
        out = Tensor(self.data)
        out._version_counter = self._version_counter
        return out

    def requires_grad_(self, requires_grad=True):
        if not self.is_leaf:
            raise RuntimeError("requires_grad_ can only be changed on leaf tensors")
        self.requires_grad = bool(requires_grad)
        return self

    def zero_(self):
        def write():
            self.data[...] = 0
        return versions.inplace(self, None, write)

    def copy_(self, other):
        def write():
            self.data[...] = other.data if isinstance(other, Tensor) else other
        return versions.inplace(self, other, write)

    def clone(self):
        return _ops().Mul.apply(self, Tensor(self.data.dtype.type(1)))

    def astype(self, dtype):
        return Tensor(self.data.astype(dtype), requires_grad=False)

    def _cast(self, dtype):
        """A float-to-float cast is recorded on the tape (as in PyTorch); others are not."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype.kind == "f" and self.dtype.kind == "f":
            return _ops().Cast.apply(self, dtype=dtype)
        return self.astype(dtype)

    def cuda(self):
        return self.to("cuda")

    def cpu(self):
        return self.to("cpu")

    def float(self):
        return self._cast(np.float32)

    def double(self):
        return self._cast(np.float64)

    def long(self):
        return self._cast(np.int64)

    def int(self):
        return self._cast(np.int32)

    def bool(self):
        return self._cast(np.bool_)

    def type_as(self, other):
        return self._cast(other.dtype)

    def to(self, device=None, dtype=None):
        """``.to(device)``, ``.to(dtype)`` or ``.to(device, dtype)``; ``device`` is a string or a ``tinynorm.device``."""
        if device is not None and not isinstance(device, str) and dtype is None:
            device, dtype = None, device
        if dtype is not None and device is None:
            return self._cast(dtype)
        data = self.data
        if dtype is not None:
            data = data.astype(dtype)
        if device is not None and str(device) != self.device:
            if str(device) in ("cuda", "cuda:0"):
                from . import cuda
                cuda.require()
                import cupy
                data = cupy.asarray(data)
            elif str(device) == "cpu":
                data = data.get()
            else:
                raise ValueError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:0'")
        if data is self.data:
            return self
        return Tensor(data, requires_grad=self.requires_grad)

    # ---- arithmetic -------------------------------------------------------
    def _coerce(self, other):
        if isinstance(other, Tensor):
            return other
        xp = get_array_module(self.data)
        dtype = self.dtype if self.dtype.kind == "f" else None
        if xp is not np and np.ndim(other) == 0 and not hasattr(other, "__cuda_array_interface__"):
            return Tensor(np.asarray(other, dtype=dtype)[()])
        return Tensor(xp.asarray(other, dtype=dtype))

    def __add__(self, other):
        return _ops().Add.apply(self, self._coerce(other))

    def __radd__(self, other):
        return _ops().Add.apply(self._coerce(other), self)

    def __sub__(self, other):
        return _ops().Sub.apply(self, self._coerce(other))

    def __rsub__(self, other):
        return _ops().Sub.apply(self._coerce(other), self)

    def __mul__(self, other):
        return _ops().Mul.apply(self, self._coerce(other))

    def __rmul__(self, other):
        return _ops().Mul.apply(self._coerce(other), self)

    def __truediv__(self, other):
        return _ops().Div.apply(self, self._coerce(other))

    def __rtruediv__(self, other):
        return _ops().Div.apply(self._coerce(other), self)

    def __neg__(self):
        return _ops().Neg.apply(self)

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            raise TypeError("tensor ** tensor is not supported; use exp(b * log(a))")
        return _ops().Pow.apply(self, exponent=exponent)

    def __matmul__(self, other):
        other = self._coerce(other)
        a, b = self, other
        if a.ndim == 1 and b.ndim == 1:
            return (a.reshape(1, -1) @ b.reshape(-1, 1)).reshape(())
        if a.ndim == 1:
            out = a.reshape(1, -1) @ b
            return out.reshape(out.shape[:-2] + out.shape[-1:])
        if b.ndim == 1:
            return (a @ b.reshape(-1, 1)).reshape(a.shape[:-1])
        return _ops().MatMul.apply(a, b)

    def __rmatmul__(self, other):
        return self._coerce(other) @ self

    def __lt__(self, other):
        return Tensor(self.data < _raw(other))

    def __le__(self, other):
        return Tensor(self.data <= _raw(other))

    def __gt__(self, other):
        return Tensor(self.data > _raw(other))

    def __ge__(self, other):
        return Tensor(self.data >= _raw(other))

    def __eq__(self, other):
        return Tensor(self.data == _raw(other))

    def __ne__(self, other):
        return Tensor(self.data != _raw(other))

    def eq(self, other):
        return self == other

    def ne(self, other):
        return self != other

    def lt(self, other):
        return self < other

    def le(self, other):
        return self <= other

    def gt(self, other):
        return self > other

    def ge(self, other):
        return self >= other

    __hash__ = object.__hash__

    def __bool__(self):
        return bool(self.data)

    # ---- math -------------------------------------------------------------
    def exp(self):
        return _ops().Exp.apply(self)

    def log(self):
        return _ops().Log.apply(self)

    def tanh(self):
        return _ops().Tanh.apply(self)

    def sigmoid(self):
        return _ops().Sigmoid.apply(self)

    def relu(self):
        return _ops().ReLU.apply(self)

    def sqrt(self):
        return self ** 0.5

    def maximum(self, other):
        return _ops().Maximum.apply(self, self._coerce(other))

    def sum(self, dim=None, keepdim=False):
        return _ops().Sum.apply(self, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim=False):
        return _ops().Mean.apply(self, dim=dim, keepdim=keepdim)

    def abs(self):
        return _ops().Abs.apply(self)

    def argmax(self, dim=None, keepdim=False):
        """Index of the first maximum (of the flattened tensor when ``dim`` is None), int64."""
        return self._arg("argmax", dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return self._arg("argmin", dim, keepdim)

    def _arg(self, name, dim, keepdim):
        axis = self._reduced_dim(dim, name)
        xp = get_array_module(self.data)
        out = getattr(self.data, name)(axis=axis).astype(np.int64)
        if keepdim:
            out = out.reshape((1,) * self.ndim) if axis is None else xp.expand_dims(out, axis)
        return Tensor(out)

    def max(self, dim=None, keepdim=False):
        """The largest element; with ``dim``, ``(values, indices)`` along it (PyTorch's ``max``);
        with a Tensor, the elementwise maximum."""
        return self._extremum("max", dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return self._extremum("min", dim, keepdim)

    def _extremum(self, op, dim, keepdim):
        if isinstance(dim, Tensor):
            return self.maximum(dim) if op == "max" else -((-self).maximum(-dim))
        axis = self._reduced_dim(dim, op)
        if axis is None:
            return _ops().ExtremumAll.apply(self, op=op)
        if self.ndim == 0:
            return MinMax(self, Tensor(np.zeros((), np.int64)))
        found = {}
        values = _ops().Extremum.apply(self, op=op, dim=axis, keepdim=bool(keepdim), indices_out=found)
        return MinMax(values, Tensor(found["indices"].astype(np.int64)))

    def _reduced_dim(self, dim, name):
        """``dim`` checked as PyTorch's max/argmax do: in range, and over a non-empty extent."""
        if dim is not None:
            dim = _dim(dim, self.ndim, name)
        if self.data.size == 0 and (dim is None or self.shape[dim] == 0):
            raise IndexError(f"{name}(): cannot reduce an empty extent (input shape "
                             f"{tuple(self.shape)}{'' if dim is None else f', dim {dim}'}): "
                             "it has no maximum")
        return dim

    # ---- shape ------------------------------------------------------------
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _shape().Reshape.apply(self, shape=shape)

    view = reshape

    def view_as(self, other):
        return self.reshape(tuple(other.shape))

    def reshape_as(self, other):
        return self.reshape(tuple(other.shape))

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        nd = self.ndim
        s, e = _dim(start_dim, nd, "flatten"), _dim(end_dim, nd, "flatten")
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                             f"for a tensor of {nd} dims")
        merged = 1
        for d in self.shape[s:e + 1]:
            merged *= d
        return self.reshape(self.shape[:s] + (merged,) + self.shape[e + 1:])

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return _shape().Permute.apply(self, dims=dims)

    def transpose(self, dim0, dim1):
        for d in (dim0, dim1):
            if not -max(self.ndim, 1) <= d < max(self.ndim, 1):
                raise IndexError(f"transpose: dimension {d} out of range for a tensor of "
                                 f"{self.ndim} dims")
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(dims)

    @property
    def T(self):
        return self.permute(tuple(reversed(range(self.ndim))))

    def __getitem__(self, index):
        index = _raw_index(index)
        return _shape().GetItem.apply(self, index=index)


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


def _array_from_python(data):
    """``Tensor([1., 2.])`` as ``torch.Tensor([..])``: a float32 array of the values."""
    try:
        return np.array(data, dtype=_DEFAULT_FLOAT)
    except (TypeError, ValueError) as e:
        raise TypeError(f"Tensor() takes an array or a (nested) sequence of numbers, got "
                        f"{type(data).__name__}: {e}") from None


def _dim(dim, ndim, name):
    """``dim`` as a non-negative axis of an ``ndim``-d tensor (a 0-d tensor takes 0 and -1), PyTorch's IndexError otherwise."""
    n = max(ndim, 1)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not -n <= dim < n:
        raise IndexError(f"{name}: dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim!r})")
    return int(dim) % n


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _raw_index(index):
    if isinstance(index, tuple):
        return tuple(_raw(i) for i in index)
    return _raw(index)


def _ops():
    from .ops import math
    return math


def _shape():
    from .ops import shape
    return shape


from .factories import as_tensor, from_numpy, ones, tensor, zeros  # noqa: E402,F401
