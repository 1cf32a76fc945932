"""Argument checks and conversions of Tensor's methods and constructor: Python data, shapes,
dims, flags, ``.grad`` assignments, indices and the TypeError for a non-numeric operand."""
import numpy as np

from . import dims

_DEFAULT_FLOAT = np.dtype(np.float32)
_NUMERIC_KINDS = "biufc"


def _array_from_python(data, requires_grad=False):
    """``Tensor([1., 2.])`` as ``torch.Tensor([..])``: a float32 array of the values; ``Tensor(n)``
    for a Python int ``n`` is n float32 zeros (torch's size-n tensor, zeroed rather than uninitialized)."""
    if type(data) is int:
        if type(requires_grad) is int:
            raise TypeError(f"Tensor({data}, {requires_grad}): tinynorm's Tensor takes one size (its "
                            f"second argument is requires_grad); use tn.zeros({data}, {requires_grad})")
        return np.zeros(_shape_arg((data,), "Tensor"), dtype=_DEFAULT_FLOAT)
    if isinstance(data, (bool, float, complex, np.generic)) or data is None:
        raise TypeError(f"Tensor(): data must be a sequence of numbers or an int size, got "
                        f"{type(data).__name__} {data!r}; use tn.tensor({data!r}) for a 0-d tensor")
    try:
        arr = np.array(data)
    except (TypeError, ValueError) as e:
        raise TypeError(f"Tensor() takes an array or a (nested) sequence of numbers, got "
                        f"{type(data).__name__}: {e}") from None
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"Tensor() takes an array or a (nested) sequence of numbers, got "
                        f"{type(data).__name__} holding {arr.dtype}")
    return arr.astype(_DEFAULT_FLOAT)


def _flag(value, name):
    if value is not True and value is not False and not isinstance(value, np.bool_):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def _refuse(symbol, other, reflected=False):
    """Python's own TypeError for an operand that is not a number or an array of numbers."""
    names = ("Tensor", type(other).__name__)
    left, right = reversed(names) if reflected else names
    raise TypeError(f"unsupported operand type(s) for {symbol}: '{left}' and '{right}'")


def _permutation(order, ndim):
    """``order`` checked as PyTorch's permute checks it: one in-range dim per axis, each once."""
    if len(order) != ndim:
        raise RuntimeError(f"permute(): number of dims don't match: the input has {ndim} dims, "
                           f"the ordering {tuple(order)} has {len(order)}")
    axes = tuple(dims.dim(d, ndim, "permute") for d in order)
    if len(set(axes)) != len(axes):
        raise RuntimeError(f"permute(): duplicate dims are not allowed, got {tuple(order)}")
    return axes


def _check_grad(t, g):
    """An assigned ``.grad`` as PyTorch checks it: a Tensor of ``t``'s shape, dtype and device."""
    from .tensor import Tensor
    if not isinstance(g, Tensor):
        raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type "
                        f"{type(g).__name__}")
    if g.data.shape != t.data.shape:
        raise RuntimeError(f"assigned grad has data of a different size: {tuple(g.shape)}, the "
                           f"tensor has {tuple(t.shape)}")
    if g.data.dtype != t.data.dtype:
        raise RuntimeError(f"assigned grad has data of a different type: {g.dtype}, the tensor "
                           f"has {t.dtype}")
    if type(g.data) is not type(t.data) and g.device != t.device:
        raise RuntimeError(f"assigned grad has data located on a different device: {g.device}, "
                           f"the tensor is on {t.device}")


def _shape_arg(shape, name):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    from . import checks
    return tuple(checks.integer(d, f"{name}: size", 0) for d in shape)


def _view_shape(arr, shape):
    """``shape`` for ``view``, refused as PyTorch refuses it where the result could not share
    ``arr``'s memory (NumPy's reshape would copy); invalid sizes are left to reshape."""
    from .backend import get_array_module
    xp = get_array_module(arr)
    try:
        out = xp.reshape(arr, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list))
                         else shape)
    except (TypeError, ValueError):
        return shape
    if out.size > 1 and not xp.may_share_memory(out, arr):
        raise RuntimeError("view size is not compatible with input tensor's size and stride (at "
                           "least one dimension spans across two contiguous subspaces). Use "
                           ".reshape(...) instead.")
    return shape


def _one_of(gradient, grad):
    """``backward``'s gradient, given as ``gradient`` (PyTorch's name) or ``grad``, not both."""
    if grad is None:
        return gradient
    if gradient is not None:
        raise TypeError("backward() got the gradient twice: as gradient and as grad")
    return grad
