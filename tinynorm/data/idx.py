"""Reader for IDX files (the MNIST / Fashion-MNIST format), raw or gzipped.

Layout: 2 zero bytes, 1 type-code byte, 1 byte ndim, ndim big-endian uint32
dimensions, then exactly prod(dims) big-endian items. Gzip is detected by the
magic bytes 1f 8b, not by the file name.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["read_idx", "load_mnist_dir", "IDX_TYPES"]

# type code -> big-endian dtype
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def _open(path):
    """A binary stream of the file's IDX bytes: decompressed on the fly when it is gzip."""
    fh = open(path, "rb")
    if fh.read(2) == _GZIP_MAGIC:
        fh.seek(0)
        return gzip.GzipFile(fileobj=fh, mode="rb"), fh
    fh.seek(0)
    return fh, fh


_CHUNK = 1 << 20


def _read(stream, n, name):
    """Up to ``n`` bytes, in chunks (no buffer of a size a header merely claims); a corrupt gzip
    stream becomes ValueError naming the file."""
    parts, got = [], 0
    try:
        while got < n:
            part = stream.read(min(_CHUNK, n - got))
            if not part:
                break
            parts.append(part)
            got += len(part)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{name}: corrupt gzip stream ({exc})") from None
    return b"".join(parts)


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a native-endian, writable ndarray.

    Raises ValueError naming the file and the problem for a bad magic number,
    an unknown type code, a truncated header, or a payload whose length is not
    exactly prod(dims) * itemsize. Reading streams: it never takes more than
    the header's declared size plus one byte, so a small gzip bomb (a few KB
    that inflate to gigabytes) is refused without filling memory.
    """
    name = os.fspath(path)
    stream, raw = _open(path)
    with raw, stream:
        magic = _read(stream, 4, name)
        if len(magic) < 4:
            raise ValueError(f"{name}: truncated header: expected 4 magic bytes, found {len(magic)}")
        if magic[0] != 0 or magic[1] != 0:
            raise ValueError(
                f"{name}: bad magic: first two bytes must be 00 00, found {magic[0]:02x} {magic[1]:02x}"
            )
        code, ndim = magic[2], magic[3]
        if code not in IDX_TYPES:
            allowed = ", ".join(f"0x{c:02X}" for c in IDX_TYPES)
            raise ValueError(f"{name}: unknown type code 0x{code:02X} (allowed: {allowed})")
        if ndim == 0:
            raise ValueError(f"{name}: bad ndim 0 (must be at least 1)")
        dims = _read(stream, 4 * ndim, name)
        if len(dims) < 4 * ndim:
            raise ValueError(
                f"{name}: truncated header: expected {4 + 4 * ndim} bytes for {ndim} dimensions, "
                f"found {4 + len(dims)}"
            )
        shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4", count=ndim))
        dtype = IDX_TYPES[code]
        count = 1
        for d in shape:
            count *= d
        expected = count * dtype.itemsize
        data = _read(stream, expected + 1, name)
    if len(data) != expected:
        more = "at least " if len(data) > expected else ""
        raise ValueError(
            f"{name}: expected {expected} data bytes for shape {shape} of {dtype.name}, "
            f"found {more}{len(data)}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count)
    return arr.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


_PREFIX = {"train": "train", "test": "t10k"}


def _find(directory: Path, prefix: str, kind: str, ndim: int) -> tuple[Path | None, list[str]]:
    tried = []
    for stem in (f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"):
        for suffix in ("", ".gz"):
            candidate = directory / (stem + suffix)
            tried.append(candidate.name)
            if candidate.is_file():
                return candidate, tried
    return None, tried


def load_mnist_dir(directory, split: str = "train", dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST-style IDX files for ``split`` ("train" or "test") from ``directory``.

    Looks for ``{train,t10k}-images-idx3-ubyte`` and ``{train,t10k}-labels-idx1-ubyte``,
    each optionally ``.gz``, also in the ``-images.idx3-ubyte`` dot variant.
    Returns images of shape (n, 1, H, W) (28x28 for MNIST) scaled to [0, 1]
    (uint8 / 255) as ``dtype`` and labels as int64 of shape (n,).
    """
    if split not in _PREFIX:
        raise ValueError(f"split must be one of 'train', 'test'; got {split!r}")
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: not a directory")
    prefix = _PREFIX[split]
    img_path, img_tried = _find(directory, prefix, "images", 3)
    lbl_path, lbl_tried = _find(directory, prefix, "labels", 1)
    missing = []
    if img_path is None:
        missing.append("images (" + ", ".join(img_tried) + ")")
    if lbl_path is None:
        missing.append("labels (" + ", ".join(lbl_tried) + ")")
    if missing:
        raise FileNotFoundError(
            f"{directory}: no {split} " + " or ".join(missing) + " found"
        )

    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{img_path}: expected a 3-d uint8 image array, found {images.ndim}-d {images.dtype}"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(
            f"{lbl_path}: expected a 1-d integer label array, found {labels.ndim}-d {labels.dtype}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"{img_path}: holds 0 images; the {split} split needs at least one sample")
    if 0 in images.shape[1:]:
        raise ValueError(f"{img_path}: images of {images.shape[1]}x{images.shape[2]} pixels; "
                         "an image needs at least one row and one column")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{lbl_path}: holds the negative label {labels.min()}; class labels are "
                         "0, 1, ...")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{directory}: {img_path.name} has {images.shape[0]} images but "
            f"{lbl_path.name} has {labels.shape[0]} labels"
        )
    n, h, w = images.shape
    out = images.astype(dtype).reshape(n, 1, h, w)
    out /= dtype.type(255)
    return out, labels.astype(np.int64)
