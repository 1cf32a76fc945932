"""Save and load ``{name: array}`` dicts as ``.npz`` or ``.safetensors`` files (never pickle).

The format follows the file name: ``.safetensors`` goes through the
``safetensors`` package's NumPy API (``pip install 'tinynorm[safetensors]'``),
so PyTorch reads it with ``safetensors.torch.load_file``; anything else is an
uncompressed ``.npz``. A save never destroys the previous file: it writes a
temporary file in the same folder, flushes and fsyncs it, then ``os.replace``s
it over the target (atomic on POSIX and Windows). Only plain numeric arrays
are written or read: a dtype that holds Python objects (``dtype.hasobject``,
structured dtypes included) is refused both ways, so no file can smuggle a
pickle in. Every error names the path.
"""
import os
import tempfile
from collections.abc import Mapping

import numpy as np

from .backend import to_numpy

NUMERIC_KINDS = "biuf"
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip (save({}))


def is_safetensors(path):
    return os.fspath(path).endswith(".safetensors")


def _safetensors_numpy():
    try:
        from safetensors import numpy as st
    except ImportError:
        raise ImportError(".safetensors files need the safetensors package: "
                          "pip install 'tinynorm[safetensors]'") from None
    return st


def _check_array(key, arr, path):
    if not isinstance(key, str) or not key:
        raise ValueError(f"{path}: keys must be non-empty strings, got {key!r}")
    if arr.dtype.hasobject or arr.dtype.names is not None or arr.dtype.kind not in NUMERIC_KINDS:
        raise ValueError(f"{path}: {key} has dtype {arr.dtype}; only plain numeric arrays (bool, "
                         "integers, floats) can be saved or loaded, never Python objects")
    return arr


def check_target(path):
    """Raise ValueError unless ``path`` names a file that can be written (its folder exists)."""
    name = os.fspath(path)
    if not name:
        raise ValueError("save: the path is empty; give a file name such as model.npz")
    if os.path.isdir(name):
        raise ValueError(f"{name}: is a directory; give a file name such as {os.path.join(name, 'model.npz')}")
    folder = os.path.dirname(os.path.abspath(name))
    if not os.path.isdir(folder):
        raise ValueError(f"{name}: the folder {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{os.path.basename(name)}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise ValueError(f"{name}: cannot write in the folder {folder} ({e.strerror})") from None
    os.close(fd)
    os.unlink(probe)
    return name


def save(state_dict, path):
    """Write ``{key: array}`` to ``path`` (``.npz``, or ``.safetensors``) atomically."""
    name = check_target(path)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"save expects a dict of arrays, got {type(state_dict).__name__}")
    arrays = {k: _check_array(k, np.require(to_numpy(v), requirements='C'), name)
              for k, v in state_dict.items()}
    payload = _safetensors_numpy().save(arrays) if is_safetensors(name) else None
    folder = os.path.dirname(os.path.abspath(name))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(name)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if payload is None:
                np.savez(f, **arrays)
            else:
                f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, name)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class RefusedFile(ValueError):
    """A file that holds Python objects (a pickle) and is therefore not read."""


def _read_member(z, key, path):
    try:
        arr = z[key]
    except ValueError as e:
        if "pickle" in str(e):
            raise RefusedFile(f"{path}: {key} holds Python objects (a pickle); refused: only plain "
                           "numeric arrays are loaded") from None
        raise
    if not isinstance(arr, np.ndarray):
        raise RefusedFile(f"{path}: member {key!r} is not a .npy array, so this zip is not an .npz "
                          "state_dict (a torch.save file? load it with torch.load and pass the dict "
                          "of tensors, or save it as .safetensors)")
    return arr


def load(path):
    """Read a file written by :func:`save` (or by PyTorch's safetensors) into an ordered dict."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise ValueError(f"{name}: is a directory, not a state_dict file")
    with open(name, "rb") as f:
        head = f.read(8)
    if head.startswith(_NPY_MAGIC):
        raise ValueError(f"{name}: is a single .npy array, not a state_dict; read it with "
                         "numpy.load, or write a dict of arrays with tinynorm.serialization.save")
    try:
        if is_safetensors(name) or not head.startswith(_ZIP_MAGICS):
            if not is_safetensors(name):
                raise ValueError("neither an .npz (zip) archive nor a .safetensors file")
            raw = _safetensors_numpy().load_file(name)
            arrays = {k: raw[k] for k in raw}
        else:
            with np.load(name, allow_pickle=False) as z:
                arrays = {k: _read_member(z, k, name) for k in z.files}
    except (ImportError, RefusedFile):
        raise
    except Exception as e:
        raise ValueError(f"{name}: corrupt or truncated state_dict file ({type(e).__name__}: {e})") from None
    return {k: _check_array(k, a, name) for k, a in arrays.items()}


__all__ = ["save", "load", "check_target", "is_safetensors"]
