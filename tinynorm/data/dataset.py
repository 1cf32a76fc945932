"""``Dataset``, ``TensorDataset`` and ``default_collate``, as in ``torch.utils.data``."""
import numbers

import numpy as np

from ..tensor import Tensor


class Dataset:
    """Anything with ``__getitem__(i)`` and ``__len__`` is a dataset; subclassing this is optional."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")


class TensorDataset(Dataset):
    """Samples ``(t[i] for t in tensors)`` of arrays or Tensors that share their first axis."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in tensors)
        sizes = [t.shape[0] if t.ndim else None for t in self.tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError(f"Size mismatch between tensors: first dimensions {sizes}")

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


def default_collate(batch):
    """Stack a list of samples into a batch, as ``torch.utils.data.default_collate``: Tensors and
    arrays of one shape are stacked, NumPy scalars keep their dtype, floats become a float64
    Tensor, and tuples, lists and dicts are collated field by field. A batch led by an int or a bool takes the dtype that
    ``torch.tensor(batch)`` infers from every element: bool, int64, or float32 when any is a float."""
    first = batch[0]
    if isinstance(first, (Tensor, np.ndarray)):
        arrays = [b.data if isinstance(b, Tensor) else np.asarray(b) for b in batch]
        for i, a in enumerate(arrays):
            if a.shape != arrays[0].shape:
                raise RuntimeError("stack expects each tensor to be equal size, but got "
                                   f"{list(arrays[0].shape)} at entry 0 and {list(a.shape)} at "
                                   f"entry {i}")
        return Tensor(np.stack(arrays))
    if isinstance(first, np.generic):
        return Tensor(np.array(batch))
    if isinstance(first, numbers.Integral):
        return Tensor(_as_torch_tensor_would(batch))
    if isinstance(first, numbers.Real):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(first, str):
        return list(batch)
    if isinstance(first, dict):
        return {k: default_collate([b[k] for b in batch]) for k in first}
    if isinstance(first, (tuple, list)):
        if any(len(b) != len(first) for b in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        return [default_collate(list(field)) for field in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain Tensors, arrays, numbers, dicts or "
                    f"lists; found {type(first).__name__}")


def _as_torch_tensor_would(numbers_):
    array = np.array(numbers_)
    kind = array.dtype.kind
    if kind == "b":
        return array
    if kind in "iu":
        return array.astype(np.int64)
    if kind == "f":
        return array.astype(np.float32)
    raise TypeError(f"default_collate: a batch of numbers holds {array.dtype} values")
