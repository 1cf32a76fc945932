"""Tensor factories: ``tensor``, ``as_tensor``, ``zeros``, ``ones``, ``from_numpy``, ``flatten``.

Every ``dtype`` goes through :func:`tinynorm.dtypes.parse`; without one the dtype is PyTorch's
(:func:`tinynorm.promotion.inferred`): Python floats become float32, NumPy values keep theirs.
"""
import numpy as np

from . import dtypes, promotion
from .backend import is_device_array
from .tensor import _DEFAULT_FLOAT, Tensor
from .tensor_args import _shape_arg


def as_tensor(x, dtype=None):
    """Wrap ``x`` without copying when it is already an array of the right dtype."""
    if dtype is not None:
        dtype = dtypes.parse(dtype, "as_tensor")
    if isinstance(x, Tensor):
        return x if dtype is None or x.dtype == dtype else x.astype(dtype)
    if is_device_array(x):
        return Tensor(x if dtype is None else x.astype(dtype))
    arr = np.asarray(x, dtype=dtype)
    if dtype is None:
        arr = arr.astype(promotion.inferred(x, arr), copy=False)
    return Tensor(arr)


def tensor(data, requires_grad=False, dtype=None, device=None):
    """A new leaf Tensor holding a copy of ``data``.

    NumPy arrays keep their dtype; Python floats become float32, as in PyTorch.
    """
    if dtype is not None:
        dtype = dtypes.parse(dtype, "tensor")
    if isinstance(data, Tensor):
        data = data.data
    if is_device_array(data):
        arr = data.astype(dtype) if dtype is not None else data.copy()
    else:
        try:
            arr = np.array(data, dtype=dtype)
        except (TypeError, ValueError) as e:
            raise TypeError(f"tensor(): data must be an array or a rectangular nested sequence of "
                            f"numbers: {e}") from None
        if dtype is None:
            arr = arr.astype(promotion.inferred(data, arr), copy=False)
    return _leaf(arr, requires_grad, device)


def zeros(*shape, dtype=np.float32, requires_grad=False, device=None):
    shape = _shape_arg(shape, "zeros")
    return _leaf(np.zeros(shape, dtype=_DEFAULT_FLOAT if dtype is None else dtypes.parse(dtype, "zeros")), requires_grad, device)


def ones(*shape, dtype=np.float32, requires_grad=False, device=None):
    shape = _shape_arg(shape, "ones")
    return _leaf(np.ones(shape, dtype=_DEFAULT_FLOAT if dtype is None else dtypes.parse(dtype, "ones")), requires_grad, device)


def _leaf(arr, requires_grad, device):
    """A leaf made on ``device`` (the move is not part of any graph)."""
    t = Tensor(arr)
    if device is not None:
        t = t.to(device)
    t.requires_grad = requires_grad
    return t


def from_numpy(array):
    """A Tensor sharing memory with ``array`` (like ``torch.from_numpy``)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def flatten(input, start_dim=0, end_dim=-1):
    """``torch.flatten``: merge the axes ``start_dim..end_dim`` into one."""
    return as_tensor(input).flatten(start_dim, end_dim)
