"""``tinynorm.save(obj, path)`` and ``tinynorm.load(path)``: checkpoint dicts without pickle.

``obj`` is a nested structure of dicts (string or integer keys), lists, tuples,
arrays, Tensors and plain scalars (None, bool, int, float, str), such as
``{"net": model.state_dict(), "acc": 0.9, "epoch": 3, "optimizer": opt.state_dict()}``.
Arrays and Tensors are written as numbered members and the structure as a JSON
header (member ``__tinynorm_save__``), all through :func:`tinynorm.serialization.save`:
atomically, ``.safetensors`` by name and ``.npz`` otherwise (``.pt``/``.pth`` included).
Anything else (a Module, a function, a set...) is refused with a TypeError naming
where it sits in ``obj``; nothing is ever unpickled.
"""
import json
import numbers

import numpy as np

from . import serialization
from .backend import to_numpy
from .tensor import Tensor

HEADER = "__tinynorm_save__"


def _encode(obj, where, arrays):
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, Tensor) or isinstance(obj, np.ndarray) or hasattr(obj, "__cuda_array_interface__"):
        key = str(len(arrays))
        arrays[key] = to_numpy(obj)
        return {"__tensor__" if isinstance(obj, Tensor) else "__array__": key}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, numbers.Integral)):
                raise TypeError(f"tinynorm.save: the key {k!r} at {where} is a {type(k).__name__}; "
                                "dict keys must be strings or integers")
            k = k if isinstance(k, str) else int(k)
            items.append([k, _encode(v, f"{where}[{k!r}]", arrays)])
        return {"__dict__": items}
    if isinstance(obj, (list, tuple)):
        out = [_encode(v, f"{where}[{i}]", arrays) for i, v in enumerate(obj)]
        return {"__tuple__": out} if isinstance(obj, tuple) else out
    raise TypeError(f"tinynorm.save: cannot save {type(obj).__name__} at {where}: only nested "
                    "dicts, lists and tuples of arrays, Tensors and plain scalars (None, bool, int, "
                    "float, str) are written (never pickle); save a Module's state_dict() instead")


def _decode(node, arrays, path):
    if isinstance(node, list):
        return [_decode(v, arrays, path) for v in node]
    if not isinstance(node, dict):
        return node
    if "__dict__" in node:
        return {k: _decode(v, arrays, path) for k, v in node["__dict__"]}
    if "__tuple__" in node:
        return tuple(_decode(v, arrays, path) for v in node["__tuple__"])
    for kind in ("__tensor__", "__array__"):
        if kind in node:
            if node[kind] not in arrays:
                raise ValueError(f"{path}: corrupt file, member {node[kind]!r} is missing")
            a = arrays[node[kind]]
            return Tensor(a) if kind == "__tensor__" else a
    raise ValueError(f"{path}: corrupt header entry {node!r}")


def save(obj, f):
    """Write ``obj`` (nested dicts/lists of arrays, Tensors and plain scalars) to the path ``f``."""
    arrays = {}
    header = _encode(obj, "obj", arrays)
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
    obj = _decode(header, arrays, f)
    if map_location is not None:
        obj = _move(obj, str(map_location))
    return obj


def _move(obj, where):
    if isinstance(obj, Tensor):
        return obj.to(where)
    if isinstance(obj, dict):
        return {k: _move(v, where) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_move(v, where) for v in obj)
    return obj


__all__ = ["save", "load"]
