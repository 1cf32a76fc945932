"""``Tensor``: an array, an optional ``.grad`` and the tape node that made it."""
import functools
import operator

import numpy as np

from . import autograd, dims, dtypes, hooks, promotion, versions
from .backend import get_array_module, is_device_array
from . import extrema
from .extrema import MinMax  # noqa: F401
from .tensor_args import (_DEFAULT_FLOAT, _NUMERIC_KINDS, _array_from_python, _check_grad, _flag,
                          _permutation, _refuse, _shape_arg, _view_shape,
                          _one_of)

_PY_SCALARS = frozenset((int, float, bool))


def _arithmetic(op, symbol, promote=promotion.pair):
    """``__op__`` and ``__rop__`` of a binary op: the other operand coerced, both promoted to
    their result dtype when they differ (:mod:`tinynorm.promotion`), then the op's Function."""
    division = promote is promotion.division
    cls = None                      # the op's Function, looked up once (ops imports this module)

    def side(reflected):
        def method(self, other):
            nonlocal cls
            operand = self._coerce(other)
            if operand is None:
                _refuse(symbol, other, reflected)
            a, b = (operand, self) if reflected else (self, operand)
            if a.data.dtype != b.data.dtype or (division and self.data.dtype.kind in "biu"):
                a, b = promote(a, b)
            if cls is None:
                cls = getattr(_ops(), op)
            return cls.apply(a, b)
        return method

    return side(False), side(True)


class Tensor:
    """An n-d array that can record the ops applied to it.

    ``data`` is a NumPy (or CuPy) array; ``grad`` is a Tensor filled by
    :meth:`backward`; ``requires_grad`` marks leaves whose gradient is wanted.
    """

    __array_priority__ = 1000

    def __init__(self, data, requires_grad=False):
        if requires_grad is False and type(data) is np.ndarray and data.dtype.kind in _NUMERIC_KINDS:
            self.data, self._grad, self._node, self._requires_grad = data, None, None, False
            self._version_counter = versions.VersionCounter()
            return
        if isinstance(data, Tensor):
            data = data.data
        if not hasattr(data, "dtype"):
            data = _array_from_python(data, requires_grad)
        if data.dtype.kind not in _NUMERIC_KINDS:
            raise ValueError(f"a Tensor holds numbers (bool, integer, float or complex), got an array "
                            f"of dtype {data.dtype}")
        self.data = data
        self._grad = None
        self._node = None
        self._version_counter = versions.VersionCounter()
        self.requires_grad = requires_grad

    @classmethod
    def _from_op(cls, data, requires_grad):
        """``Tensor(data, requires_grad)`` for an op's output, without re-checking a NumPy array."""
        if type(data) is not np.ndarray or data.dtype.kind not in ("f" if requires_grad
                                                                    else _NUMERIC_KINDS):
            return cls(data, requires_grad=requires_grad)
        t = object.__new__(cls)
        t.data, t._grad, t._node, t._requires_grad = data, None, None, requires_grad
        t._version_counter = versions.VersionCounter()
        return t

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if value is not False and value is not True and not isinstance(value, np.bool_):
            raise RuntimeError(f"requires_grad must be a bool, got {type(value).__name__} {value!r}")
        if not value and getattr(self, "_node", None) is not None and self._requires_grad:
            raise RuntimeError("you can only change requires_grad flags of leaf variables; to use "
                               "a computed tensor without its graph, use y = x.detach()")
        if value and self.data.dtype.kind != "f":
            raise RuntimeError("only Tensors of floating point dtype can require gradients, "
                               f"got {self.data.dtype}")
        self._requires_grad = bool(value)

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            _check_grad(self, value)
        self._grad = value

    _version = property(operator.attrgetter("_version_counter.value"))

    # ---- inspection -------------------------------------------------------
    shape = property(operator.attrgetter("data.shape"))
    dtype = property(operator.attrgetter("data.dtype"))
    ndim = property(operator.attrgetter("data.ndim"))

    @property
    def device(self):
        from .device import device
        return device("cuda" if is_device_array(self.data) else "cpu")

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    def dim(self):
        return self.data.ndim

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dims.dim(dim, self.ndim, "size")]

    def numel(self):
        return int(self.data.size)

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def item(self):
        if self.data.size != 1:
            raise RuntimeError(f"a Tensor with {self.data.size} elements cannot be converted to Scalar")
        return self.data.item()

    def __float__(self):
        return float(self._scalar("float"))

    def __int__(self):
        return int(self._scalar("int"))

    def _scalar(self, what):
        if self.data.size != 1:
            raise ValueError(f"only one element tensors can be converted to Python scalars ({what}() "
                             f"of a tensor of shape {tuple(self.shape)})")
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
    def backward(self, gradient=None, retain_graph=None, create_graph=False, *, grad=None):
        """Accumulate the gradient of this tensor into ``.grad`` of the leaves (``grad=`` is an
        older name of ``gradient``). ``create_graph=True`` records the backward pass on the tape,
        so the gradients can be differentiated again; ``retain_graph`` defaults to it."""
        autograd.backward(self, _one_of(gradient, grad), retain_graph, create_graph)

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
        self.requires_grad = requires_grad
        return self

    def zero_(self):
        def write():
            self.data[...] = 0
        return versions.inplace(self, None, write, "zero_")

    def copy_(self, other):
        if not isinstance(other, Tensor):
            src, other = other, self._coerce(other)
            if other is None:
                raise TypeError(f"copy_(): argument 'other' must be a Tensor or an array of numbers, "
                                f"not {type(src).__name__}")
        def write():
            self.data[...] = other.data if isinstance(other, Tensor) else other
        return versions.inplace(self, other, write)

    def clone(self):
        return _ops().Mul.apply(self, Tensor(self.data.dtype.type(1)))

    def astype(self, dtype):
        """``self`` as ``dtype``, recorded on the tape like :meth:`to` (NumPy's name for it)."""
        return self._cast(dtypes.parse(dtype, "astype"))

    def _cast(self, dtype):
        """A cast to a float (or complex) dtype is recorded on the tape, as in PyTorch; a cast to
        bool or an integer has no gradient (PyTorch's integer tensors cannot require one)."""
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype.kind in "fc" and self.dtype.kind == "f":
            return _ops().Cast.apply(self, dtype=dtype)
        return Tensor(self.data.astype(dtype))

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
        """``.to(device)``, ``.to(dtype)`` or ``.to(device, dtype)``; ``device`` is a string or a
        ``tinynorm.device``. Both the cast and the move are recorded on the tape."""
        if device is not None and dtype is None and not isinstance(device, str):
            device, dtype = None, device
        out = self if dtype is None else self._cast(dtypes.parse(dtype, "to"))
        if device is None:
            return out
        if str(device) not in ("cuda", "cuda:0", "cpu"):
            raise ValueError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:0'")
        target = "cpu" if str(device) == "cpu" else "cuda"
        return out if target == out.device else _ops().ToDevice.apply(out, device=target)

    # ---- arithmetic -------------------------------------------------------
    def _coerce(self, other):
        """``other`` as a Tensor operand, or None when it is not a number or an array of numbers.

        A Python or NumPy scalar becomes a 0-d Tensor of the result dtype (PyTorch's wrapped
        number, see :mod:`tinynorm.promotion`); an array or a sequence becomes a Tensor as
        ``tn.tensor`` makes one (then promoted as a tensor).
        """
        if isinstance(other, Tensor):
            return other
        if isinstance(other, np.generic):
            other = other.item()
        xp = get_array_module(self.data)
        if type(other) in _PY_SCALARS or type(other) is complex:
            dtype = self.data.dtype
            if dtype.kind not in "fc" or type(other) is complex:
                dtype = promotion.scalar_dtype(dtype, other)
            try:
                value = np.asarray(other, dtype=dtype)
            except OverflowError:                   # uint8 + 300 wraps around, as in PyTorch
                value = np.asarray(other).astype(dtype)
            return Tensor(value if xp is np else value[()])
        if getattr(getattr(other, "dtype", None), "kind", None) is None:
            try:
                arr = np.asarray(other)
            except (TypeError, ValueError):
                return None
            if arr.dtype.kind not in _NUMERIC_KINDS:
                return None
            return Tensor(xp.asarray(arr, dtype=promotion.inferred(other, arr)))
        if other.dtype.kind not in _NUMERIC_KINDS:
            return None
        return Tensor(xp.asarray(other))

    __add__, __radd__ = _arithmetic("Add", "+")
    __sub__, __rsub__ = _arithmetic("Sub", "-")
    __mul__, __rmul__ = _arithmetic("Mul", "*")
    __truediv__, __rtruediv__ = _arithmetic("Div", "/", promotion.division)

    def __neg__(self):
        return _ops().Neg.apply(self)

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            raise TypeError("tensor ** tensor is not supported; use exp(b * log(a))")
        if type(exponent) not in _PY_SCALARS and (
                not isinstance(exponent, (int, float, np.number)) or isinstance(exponent, np.complexfloating)):
            _refuse("** or pow()", exponent)
        exponent = promotion.python_scalar(exponent)
        base = promotion.cast(self, promotion.scalar_dtype(self.data.dtype, exponent))
        return _ops().Pow.apply(base, exponent=exponent)

    def __matmul__(self, other):
        b = self._coerce(other)
        if b is None:
            _refuse("@", other)
        a = self
        if a.data.dtype != b.data.dtype:
            a, b = promotion.pair(a, b)
        if a.ndim == 1 and b.ndim == 1:
            return (a.reshape(1, -1) @ b.reshape(-1, 1)).reshape(())
        if a.ndim == 1:
            out = a.reshape(1, -1) @ b
            return out.reshape(out.shape[:-2] + out.shape[-1:])
        if b.ndim == 1:
            return (a @ b.reshape(-1, 1)).reshape(a.shape[:-1])
        return _ops().MatMul.apply(a, b)

    def __rmatmul__(self, other):
        a = self._coerce(other)
        if a is None:
            _refuse("@", other, True)
        return a @ self

    def _compare(self, op, other):
        if type(other) in _PY_SCALARS:
            return Tensor(op(self.data, other))
        b = self._coerce(other)
        return NotImplemented if b is None else Tensor(op(self.data, b.data))

    __lt__ = lt = lambda self, other, op=operator.lt: self._compare(op, other)  # noqa: E731
    __le__ = le = lambda self, other, op=operator.le: self._compare(op, other)  # noqa: E731
    __gt__ = gt = lambda self, other, op=operator.gt: self._compare(op, other)  # noqa: E731
    __ge__ = ge = lambda self, other, op=operator.ge: self._compare(op, other)  # noqa: E731
    __eq__ = eq = lambda self, other, op=operator.eq: self._compare(op, other)  # noqa: E731
    __ne__ = ne = lambda self, other, op=operator.ne: self._compare(op, other)  # noqa: E731

    __hash__ = object.__hash__

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {'no values' if self.data.size == 0 else 'more than one value'} "
                               "is ambiguous")
        return bool(self.data)

    # ---- math -------------------------------------------------------------
    def exp(self):
        return _ops().Exp.apply(promotion.floating(self))

    def log(self):
        return _ops().Log.apply(promotion.floating(self))

    def tanh(self):
        return _ops().Tanh.apply(promotion.floating(self))

    def sigmoid(self):
        return _ops().Sigmoid.apply(promotion.floating(self))

    def relu(self):
        return _ops().ReLU.apply(self)

    def sqrt(self):
        return self ** 0.5

    def maximum(self, other):
        operand = self._coerce(other)
        if operand is None:
            raise TypeError(f"maximum(): argument 'other' must be a Tensor or a number, "
                            f"not {type(other).__name__}")
        return _ops().Maximum.apply(*promotion.pair(self, operand))

    def sum(self, dim=None, keepdim=False):
        return _ops().Sum.apply(self, dim=dim, keepdim=_flag(keepdim, "sum: keepdim"))

    def mean(self, dim=None, keepdim=False):
        return _ops().Mean.apply(self, dim=dim, keepdim=_flag(keepdim, "mean: keepdim"))

    def abs(self):
        return _ops().Abs.apply(self)

    def argmax(self, dim=None, keepdim=False):
        """Index of the first maximum (of the flattened tensor when ``dim`` is None), int64."""
        return extrema.arg(self, "argmax", dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return extrema.arg(self, "argmin", dim, keepdim)

    def max(self, dim=None, keepdim=False):
        """The largest element; with ``dim``, ``(values, indices)`` along it (PyTorch's ``max``);
        with a Tensor, the elementwise maximum."""
        return extrema.extremum(self, "max", dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return extrema.extremum(self, "min", dim, keepdim)

    # ---- shape ------------------------------------------------------------
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _shape().Reshape.apply(self, shape=shape)

    def view(self, *shape):
        return self.reshape(*_view_shape(self.data, shape))

    def view_as(self, other):
        return self.view(tuple(other.shape))

    def reshape_as(self, other):
        return self.reshape(tuple(other.shape))

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        nd = self.ndim
        s, e = dims.dim(start_dim, nd, "flatten"), dims.dim(end_dim, nd, "flatten")
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                             f"for a tensor of {nd} dims")
        merged = 1
        for d in self.shape[s:e + 1]:
            merged *= d
        return self.reshape(self.shape[:s] + (merged,) + self.shape[e + 1:])

    def permute(self, *order):
        if len(order) == 1 and isinstance(order[0], (tuple, list)):
            order = tuple(order[0])
        return _shape().Permute.apply(self, dims=_permutation(order, self.ndim))

    def transpose(self, dim0, dim1):
        dim0, dim1 = dims.dim(dim0, self.ndim, "transpose"), dims.dim(dim1, self.ndim, "transpose")
        order = list(range(self.ndim))
        if self.ndim:
            order[dim0], order[dim1] = order[dim1], order[dim0]
        return self.permute(order)

    @property
    def T(self):
        return self.permute(tuple(reversed(range(self.ndim))))

    def __getitem__(self, index):
        index = _raw_index(index)
        return _shape().GetItem.apply(self, index=index)


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _raw_index(index):
    if isinstance(index, tuple):
        return tuple(_raw(i) for i in index)
    return _raw(index)


def _ops():
    return _op_modules()[0]


def _shape():
    return _op_modules()[1]


@functools.cache
def _op_modules():
    from .ops import math, shape
    return math, shape


from .factories import as_tensor, from_numpy, ones, tensor, zeros  # noqa: E402,F401

autograd._bind_tensor(Tensor, as_tensor)
