"""PyTorch's type promotion: the one rule for every binary op, ``cat``/``stack`` and the factories.

Categories are bool < integer < float < complex. Operands come in three tiers, most weighty
first: tensors with dimensions, 0-d tensors, Python (and NumPy) scalars. Within a tier dtypes
promote as ``promote_types`` (the higher category's dtype; two of one category as NumPy). A
lower tier changes the result only when it is of a higher category: a 0-d tensor then brings its
own dtype (``int64 tensor + tensor(1.5, float64)`` is float64), a scalar the default of its
category (float32 for a float, int64 for an int, complex64 for a complex), so ``uint8 / 255``,
``int64 + 0.5`` and ``float32 * int64 tensor`` are float32, as in PyTorch, not NumPy's float64.
True division of integers (or bools) gives float32. Same dtypes cost one comparison.
"""
import numpy as np

DEFAULT_FLOAT = np.dtype(np.float32)
DEFAULT_INT = np.dtype(np.int64)
BOOL = np.dtype(np.bool_)
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
_SCALAR = {bool: BOOL, int: DEFAULT_INT, float: DEFAULT_FLOAT, complex: np.dtype(np.complex64)}
_SCALAR_CACHE = {}


def promote_types(a, b):
    """``torch.promote_types``: the higher category's dtype, or NumPy's promotion within one."""
    if a == b:
        return a
    ca, cb = _CATEGORY[a.kind], _CATEGORY[b.kind]
    if ca == cb or ca + cb == 5:                # one category, or float with complex
        return np.promote_types(a, b)
    return a if ca > cb else b


def _combine(higher, lower):
    """The dtype of a weightier tier (``higher``) joined with a lighter one (PyTorch's
    ``combine_categories``): the lighter one counts only when its category is higher."""
    ch, cl = _CATEGORY[higher.kind], _CATEGORY[lower.kind]
    if ch == 3:
        return higher
    if cl == 3:
        return np.promote_types(higher, np.complex64) if ch == 2 else lower
    if ch == 2:
        return higher
    if ch == 0 or cl == 2:
        return promote_types(higher, lower)
    return higher


def scalar_dtype(dtype, scalar):
    """The result dtype of a tensor of ``dtype`` with a Python scalar ``scalar``."""
    key = (dtype, type(scalar))
    out = _SCALAR_CACHE.get(key)
    if out is None:
        out = _SCALAR_CACHE[key] = _combine(dtype, _SCALAR[type(scalar)])
    return out


def result_type(a, b):
    """The result dtype of two Tensor operands, each with dimensions or 0-d."""
    da, db = a.data.dtype, b.data.dtype
    za, zb = a.data.ndim == 0, b.data.ndim == 0
    if za == zb:
        return promote_types(da, db)
    return _combine(db, da) if za else _combine(da, db)


def cast(t, dtype):
    """``t`` as ``dtype``: unchanged when it already is, else through ``Tensor._cast`` (recorded
    on the tape for a float operand, so its gradient comes back in its own dtype)."""
    return t if t.data.dtype == dtype else t._cast(dtype)


def pair(a, b):
    """``a`` and ``b`` cast to their result dtype."""
    dtype = result_type(a, b)
    return cast(a, dtype), cast(b, dtype)


def division(a, b):
    """The operands of ``a / b``: the result dtype, and float32 where that is bool or integer."""
    dtype = a.data.dtype if a.data.dtype == b.data.dtype else result_type(a, b)
    if dtype.kind in "biu":
        dtype = DEFAULT_FLOAT
    return cast(a, dtype), cast(b, dtype)


def concatenated(tensors):
    """``tensors`` cast to the dtype ``torch.cat``/``stack`` give them (``promote_types`` of all)."""
    dtype = tensors[0].data.dtype
    for t in tensors[1:]:
        if t.data.dtype != dtype:
            dtype = promote_types(dtype, t.data.dtype)
    return [cast(t, dtype) for t in tensors]


def python_scalar(value):
    """A NumPy scalar as the Python scalar PyTorch takes it for (a wrapped number); others as given."""
    return value.item() if isinstance(value, np.generic) else value


def inferred(data, arr):
    """The dtype ``torch.tensor(data)`` gives the values NumPy read as ``arr``: a NumPy array or
    scalar keeps its dtype; Python floats (complexes) of a sequence become float32 (complex64)
    unless a NumPy float64 (complex128) value is among them."""
    if arr.dtype.kind not in "fc" or isinstance(data, (np.ndarray, np.generic)):
        return arr.dtype
    dtype = None
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
            continue
        if isinstance(item, (np.ndarray, np.generic)):
            d = item.dtype
        elif hasattr(item, "data") and hasattr(item.data, "dtype"):
            d = item.data.dtype
        else:
            d = _SCALAR.get(type(item), np.asarray(item).dtype)
        dtype = d if dtype is None else promote_types(dtype, d)
    return (DEFAULT_FLOAT if arr.dtype.kind == "f" else arr.dtype) if dtype is None else dtype


def floating(t):
    """The operand of a floating op (exp, log, tanh, sigmoid): a bool or integer tensor as float32."""
    return t if t.data.dtype.kind in "fc" else cast(t, DEFAULT_FLOAT)
