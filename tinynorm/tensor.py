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
        return "cuda" if get_array_module(self.data) is not np else "cpu"

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
        return self.data.item()

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

    def cuda(self):
        return self.to("cuda")

    def cpu(self):
        return self.to("cpu")

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def to(self, device=None, dtype=None):
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

    def argmax(self, dim=None):
        return Tensor(self.data.argmax(axis=self._reduced_dim(dim, "argmax")))

    def max(self, dim=None):
        return Tensor(self.data.max(axis=self._reduced_dim(dim, "max")))

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


def _shape_arg(shape, name):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    from . import checks
    return tuple(checks.integer(d, f"{name}: size", 0) for d in shape)


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


def as_tensor(x, dtype=None):
    """Wrap ``x`` without copying when it is already an array of the right dtype."""
    if isinstance(x, Tensor):
        return x if dtype is None or x.dtype == dtype else x.astype(dtype)
    if hasattr(x, "__cuda_array_interface__") and not isinstance(x, np.ndarray):
        return Tensor(x if dtype is None else x.astype(dtype))
    arr = np.asarray(x, dtype=dtype)
    if dtype is None and arr.dtype == np.float64 and not isinstance(x, np.ndarray):
        arr = arr.astype(_DEFAULT_FLOAT)
    return Tensor(arr)


def tensor(data, requires_grad=False, dtype=None, device=None):
    """A new leaf Tensor holding a copy of ``data``.

    NumPy arrays keep their dtype; Python floats become float32, as in PyTorch.
    """
    if isinstance(data, Tensor):
        data = data.data
    if hasattr(data, "__cuda_array_interface__") and not isinstance(data, np.ndarray):
        arr = data.astype(dtype) if dtype is not None else data.copy()
    else:
        try:
            arr = np.array(data, dtype=dtype)
        except (TypeError, ValueError) as e:
            raise TypeError(f"tensor(): data must be an array or a rectangular nested sequence of "
                            f"numbers: {e}") from None
        if dtype is None and arr.dtype == np.float64 and not isinstance(data, np.ndarray):
            arr = arr.astype(_DEFAULT_FLOAT)
    return Tensor(arr, requires_grad=requires_grad).to(device)


def zeros(*shape, dtype=np.float32, requires_grad=False, device=None):
    shape = _shape_arg(shape, "zeros")
    return Tensor(np.zeros(shape, dtype=dtype), requires_grad=requires_grad).to(device)


def ones(*shape, dtype=np.float32, requires_grad=False, device=None):
    shape = _shape_arg(shape, "ones")
    return Tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad).to(device)


def from_numpy(array):
    """A Tensor sharing memory with ``array`` (like ``torch.from_numpy``)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)
