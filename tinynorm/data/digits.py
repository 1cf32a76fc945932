"""The bundled 8x8 handwritten digits (UCI, CC BY 4.0; see DIGITS_LICENSE.txt).

``digits.npz`` holds 1,797 images (uint8, values 0..16) and labels (uint8,
0..9) in scikit-learn's order; it is built by ``scripts/make_digits.py``.

Split rule (fixed, applied at load time): sample ``i`` (its index in the file)
gets the key ``(i * 2654435761) % 2**32`` (Knuth's multiplicative hash). The
1,437 samples with the smallest keys are ``"train"``, the 360 with the largest
keys are ``"test"`` (20%). Within a split, samples keep file order. The rule is
plain integer arithmetic, so it does not depend on NumPy's random streams.
Every class has 32..45 test samples.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

__all__ = ["load_digits", "split_indices", "N_DIGITS", "N_TRAIN", "N_TEST"]

N_DIGITS = 1797
N_TRAIN = 1437
N_TEST = N_DIGITS - N_TRAIN  # 360

_SPLITS = ("train", "test", "all")
_HASH_MULTIPLIER = 2654435761


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    """The stored uint8 images (N, 8, 8) and labels (N,), read-only."""
    ref = resources.files(__name__.rpartition(".")[0]).joinpath("digits.npz")
    with ref.open("rb") as fh, np.load(fh, allow_pickle=False) as npz:
        images = np.array(npz["images"], dtype=np.uint8)
        labels = np.array(npz["labels"], dtype=np.uint8)
    if images.shape != (N_DIGITS, 8, 8) or labels.shape != (N_DIGITS,):
        raise ValueError(
            f"digits.npz: expected images (1797, 8, 8) and labels (1797,), "
            f"found {images.shape} and {labels.shape}"
        )
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _check_split(split: str) -> None:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of 'train', 'test', 'all'; got {split!r}")


def split_indices(split: str = "train") -> np.ndarray:
    """File indices (int64, ascending) of the samples in ``split``."""
    _check_split(split)
    idx = np.arange(N_DIGITS, dtype=np.int64)
    if split == "all":
        return idx
    keys = (idx * _HASH_MULTIPLIER) % (1 << 32)  # fits in int64
    order = np.argsort(keys, kind="stable")
    chosen = order[:N_TRAIN] if split == "train" else order[N_TRAIN:]
    return np.sort(chosen)


def load_digits(split: str = "train", dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)`` for ``split`` in {"train", "test", "all"}.

    images: shape (n, 1, 8, 8), floating ``dtype``, pixel / 16 so in [0, 1].
    labels: shape (n,), int64 in 0..9. n is 1437, 360 or 1797.
    Fresh arrays on every call.
    """
    _check_split(split)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    raw_images, raw_labels = _raw()
    idx = split_indices(split)
    images = raw_images[idx].astype(dtype)
    images /= dtype.type(16)
    labels = raw_labels[idx].astype(np.int64)
    return images.reshape(len(idx), 1, 8, 8), labels
