"""``tinynorm.save(obj, path)`` and ``tinynorm.load(path)``: checkpoint dicts without pickle.

``obj`` is a nested structure of dicts (string or integer keys), lists, tuples,
arrays, Tensors and plain scalars (None, bool, int, float, str), such as
``{"net": model.state_dict(), "acc": 0.9, "epoch": 3, "optimizer": opt.state_dict()}``.
Arrays and Tensors are written as numbered members and the structure as a JSON
header (member ``__tinynorm_save__``), all through :func:`tinynorm.serialization.save`:
atomically, ``.safetensors`` by name and ``.npz`` otherwise (``.pt``/``.pth`` included).
Anything else (a Module, a function, a set...) is refused with a TypeError naming
where it sits in ``obj``; nothing is ever unpickled. The header records whether a Tensor is a
Parameter and its ``requires_grad``, and an object met twice is written once and loaded as one
object, as ``torch.load`` restores them.
"""
import json
import numbers

import numpy as np

from . import serialization
from .backend import is_device_array, to_numpy
from .tensor import Tensor

HEADER = "__tinynorm_save__"


def _encode(obj, where, arrays, memo):
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, Tensor) or isinstance(obj, np.ndarray) or is_device_array(obj):
        if id(obj) not in memo:
            memo[id(obj)] = str(len(arrays))
            arrays[memo[id(obj)]] = to_numpy(obj)
        if not isinstance(obj, Tensor):
            return {"__array__": memo[id(obj)]}
        kind = "__parameter__" if isinstance(obj, _parameter()) else "__tensor__"
        return {kind: memo[id(obj)], "requires_grad": obj.requires_grad}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, numbers.Integral)):
                raise TypeError(f"tinynorm.save: the key {k!r} at {where} is a {type(k).__name__}; "
                                "dict keys must be strings or integers")
            k = k if isinstance(k, str) else int(k)
            items.append([k, _encode(v, f"{where}[{k!r}]", arrays, memo)])
        return {"__dict__": items}
    if isinstance(obj, (list, tuple)):
        out = [_encode(v, f"{where}[{i}]", arrays, memo) for i, v in enumerate(obj)]
        return {"__tuple__": out} if isinstance(obj, tuple) else out
    raise TypeError(f"tinynorm.save: cannot save {type(obj).__name__} at {where}: only nested "
                    "dicts, lists and tuples of arrays, Tensors and plain scalars (None, bool, int, "
                    "float, str) are written (never pickle); save a Module's state_dict() instead")


def _parameter():
    from .nn.module import Parameter
    return Parameter


def _is_key(k):
    return isinstance(k, (str, int)) and not isinstance(k, bool)


def _member(node, arrays, path, memo):
    """The Tensor, Parameter or array a header entry names; one object per member (shared)."""
    kind = next(iter(node))
    key, extra = node[kind], {k: v for k, v in node.items() if k != kind}
    allowed = set() if kind == "__array__" else {"requires_grad"}
    if not isinstance(key, str) or set(extra) - allowed \
            or not all(isinstance(v, bool) for v in extra.values()):
        raise ValueError(f"{path}: corrupt header entry {node!r:.200}")
    if key not in arrays:
        raise ValueError(f"{path}: corrupt file, member {key!r} is missing")
    if (kind, key) not in memo:
        requires_grad = extra.get("requires_grad", kind == "__parameter__")
        a = arrays[key]
        memo[kind, key] = (a if kind == "__array__" else _parameter()(a, requires_grad)
                           if kind == "__parameter__" else Tensor(a, requires_grad=requires_grad))
    return memo[kind, key]


def _decode(node, arrays, path, memo):
    if isinstance(node, list):
        return [_decode(v, arrays, path, memo) for v in node]
    if not isinstance(node, dict):
        return node
    kind = next(iter(node), None)
    if kind in ("__tensor__", "__parameter__", "__array__"):
        return _member(node, arrays, path, memo)
    value = node[kind] if len(node) == 1 else None
    if kind == "__dict__" and isinstance(value, list) and all(
            isinstance(kv, list) and len(kv) == 2 and _is_key(kv[0]) for kv in value):
        return {k: _decode(v, arrays, path, memo) for k, v in value}
    if kind == "__tuple__" and isinstance(value, list):
        return tuple(_decode(v, arrays, path, memo) for v in value)
    raise ValueError(f"{path}: corrupt header entry {node!r:.200}")


def save(obj, f):
    """Write ``obj`` (nested dicts/lists of arrays, Tensors and plain scalars) to the path ``f``."""
    arrays = {}
    header = _encode(obj, "obj", arrays, {})
    arrays[HEADER] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    serialization.save(arrays, f)


def load(f, map_location=None, weights_only=True):
    """Read what :func:`save` wrote (or a plain ``{name: array}`` file, returned as that dict).

    ``map_location`` ('cpu' or 'cuda') moves the Tensors; ``weights_only`` is accepted for
    PyTorch's signature: nothing is ever unpickled.
    """
    arrays = serialization.load(f)
    if HEADER not in arrays:
        return arrays
    try:
        header = json.loads(arrays.pop(HEADER).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{f}: corrupt tinynorm.save header ({e})") from None
    obj = _decode(header, arrays, f, {})
    if map_location is not None:
        obj = _move(obj, str(map_location), {})
    return obj


def _move(obj, where, memo):
    if isinstance(obj, Tensor):
        if id(obj) not in memo:
            moved = obj.detach().to(where)
            memo[id(obj)] = obj if moved.device == obj.device else \
                type(obj)(moved.data, requires_grad=obj.requires_grad)
        return memo[id(obj)]
    if isinstance(obj, dict):
        return {k: _move(v, where, memo) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_move(v, where, memo) for v in obj)
    return obj


__all__ = ["save", "load"]
