"""Save and load ``state_dict``s as plain ``.npz`` files (no pickle)."""
import numpy as np

from .backend import to_numpy


def save(state_dict, path):
    """Write ``{key: array}`` to ``path`` with ``np.savez`` (object arrays are refused)."""
    arrays = {}
    for key, value in state_dict.items():
        arr = to_numpy(value)
        if arr.dtype == object:
            raise ValueError(f"save: {key} holds Python objects; only numeric arrays can be saved")
        arrays[key] = arr
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load(path):
    """Read a file written by :func:`save` into an ordered ``{key: array}`` dict."""
    with np.load(path, allow_pickle=False) as z:
        return {key: z[key] for key in z.files}
