"""Tests for tinynorm.data: bundled digits, IDX reader, DataLoader."""

import gzip
import struct

import numpy as np
import pytest

from tinynorm.data import DataLoader, load_digits, load_mnist_dir, read_idx
from tinynorm.data.digits import split_indices
from tinynorm.data.idx import IDX_TYPES

# ---------------------------------------------------------------- digits


@pytest.mark.parametrize("split,n", [("train", 1437), ("test", 360), ("all", 1797)])
def test_digits_shapes_dtypes_range(split, n):
    x, y = load_digits(split)
    assert x.shape == (n, 1, 8, 8) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    # values are k/16 for integer k
    np.testing.assert_array_equal(x * 16, np.round(x * 16))
    assert set(np.unique(y)) == set(range(10))


def test_digits_dtype_argument():
    x, _ = load_digits("test", dtype=np.float64)
    assert x.dtype == np.float64
    x32, _ = load_digits("test")
    np.testing.assert_array_equal(x, x32.astype(np.float64))
    with pytest.raises(ValueError, match="floating"):
        load_digits("test", dtype=np.int32)


def test_digits_class_counts_plausible():
    _, y_all = load_digits("all")
    _, y_tr = load_digits("train")
    _, y_te = load_digits("test")
    for y, lo, hi in ((y_all, 170, 190), (y_tr, 120, 160), (y_te, 25, 50)):
        counts = np.bincount(y, minlength=10)
        assert len(counts) == 10
        assert counts.min() >= lo and counts.max() <= hi, counts
    np.testing.assert_array_equal(
        np.bincount(y_tr, minlength=10) + np.bincount(y_te, minlength=10),
        np.bincount(y_all, minlength=10),
    )


def test_digits_split_disjoint_union_and_consistent():
    tr, te, al = split_indices("train"), split_indices("test"), split_indices("all")
    assert len(tr) == 1437 and len(te) == 360
    assert np.intersect1d(tr, te).size == 0
    np.testing.assert_array_equal(np.union1d(tr, te), np.arange(1797))
    np.testing.assert_array_equal(al, np.arange(1797))
    x_all, y_all = load_digits("all")
    x_tr, y_tr = load_digits("train")
    x_te, y_te = load_digits("test")
    np.testing.assert_array_equal(x_all[tr], x_tr)
    np.testing.assert_array_equal(y_all[tr], y_tr)
    np.testing.assert_array_equal(x_all[te], x_te)
    np.testing.assert_array_equal(y_all[te], y_te)


def test_digits_split_deterministic_and_pinned():
    x1, y1 = load_digits("test")
    x2, y2 = load_digits("test")
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert x1 is not x2  # fresh arrays each call
    x1[...] = -1
    np.testing.assert_array_equal(load_digits("test")[0], x2)
    # Pin the documented rule: the 360 largest keys (i * 2654435761) % 2**32.
    i = np.arange(1797)
    keys = [(int(k) * 2654435761) % 2**32 for k in i]
    expected_test = np.sort(np.argsort(keys, kind="stable")[1437:])
    np.testing.assert_array_equal(split_indices("test"), expected_test)
    assert split_indices("test")[:5].tolist() == sorted(split_indices("test").tolist())[:5]


def test_digits_bad_split():
    with pytest.raises(ValueError, match="'train', 'test', 'all'"):
        load_digits("validation")
    with pytest.raises(ValueError, match="'train', 'test', 'all'"):
        split_indices("Train")


# ---------------------------------------------------------------- IDX

_CODE = {np.dtype(v.newbyteorder("=")): k for k, v in IDX_TYPES.items()}


def idx_bytes(arr, code=None):
    """Serialize ``arr`` in IDX format (big-endian)."""
    arr = np.asarray(arr)
    if code is None:
        code = _CODE[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path, arr, gz=False, **kw):
    data = idx_bytes(arr, **kw)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip_uint8(tmp_path, gz):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    lbls = rng.integers(0, 10, size=5, dtype=np.uint8)
    a = read_idx(write_idx(tmp_path / "imgs", imgs, gz=gz))
    b = read_idx(write_idx(tmp_path / "lbls", lbls, gz=gz))
    assert a.dtype == np.uint8 and a.shape == (5, 4, 3)
    np.testing.assert_array_equal(a, imgs)
    np.testing.assert_array_equal(b, lbls)
    a[0, 0, 0] = 7  # writable


def test_idx_gzip_detected_by_magic_not_extension(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    # gzipped content without .gz, and raw content with .gz
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a-ubyte", arr, gz=True)), arr)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "b.gz", arr, gz=False)), arr)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_other_types_native_endian(tmp_path, dtype):
    arr = (np.arange(-6, 6).reshape(2, 3, 2) * 3).astype(dtype)
    out = read_idx(write_idx(tmp_path / "x", arr))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def _malformed_cases():
    good = idx_bytes(np.zeros((2, 3), np.uint8))
    return {
        "bad magic": (b"\x01" + good[1:], "bad magic"),
        "bad magic 2nd byte": (good[:1] + b"\x07" + good[2:], "bad magic"),
        "bad type code": (good[:2] + b"\x0a" + good[3:], "unknown type code 0x0A"),
        "ndim zero": (good[:3] + b"\x00" + good[4:], "ndim"),
        "short header": (good[:3], "truncated header"),
        "truncated dims": (good[:9], "truncated header"),
        "truncated payload": (good[:-1], "expected 6 data bytes"),
        "empty payload": (good[:12], "found 0"),
        "trailing bytes": (good + b"\x00\x00", "found at least 7"),
        "empty file": (b"", "truncated header"),
    }


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("case", sorted(_malformed_cases()))
def test_idx_malformed_raises(tmp_path, case, gz):
    data, needle = _malformed_cases()[case]
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError) as info:
        read_idx(path)
    msg = str(info.value)
    assert needle in msg
    assert "train-images-idx3-ubyte" in msg


def test_idx_message_example(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 60000, 28, 28)
    path.write_bytes(gzip.compress(header + bytes(1000)))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: expected 47040000 data bytes.*found 1000"):
        read_idx(path)


def test_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100, np.uint8)))[:-10])
    with pytest.raises(ValueError, match="x.gz: corrupt gzip"):
        read_idx(path)


def _mnist_dir(tmp_path, n_train=7, n_test=3, gz=False, dot=False, sub="m"):
    d = tmp_path / sub
    d.mkdir()
    rng = np.random.default_rng(2)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        imgs[0, 0, 0], imgs[0, 0, 1] = 0, 255
        lbls = rng.integers(0, 10, size=n, dtype=np.uint8)
        sep = "." if dot else "-"
        ext = ".gz" if gz else ""
        write_idx(d / f"{prefix}-images{sep}idx3-ubyte{ext}", imgs, gz=gz)
        write_idx(d / f"{prefix}-labels{sep}idx1-ubyte{ext}", lbls, gz=gz)
        data[prefix] = (imgs, lbls)
    return d, data


@pytest.mark.parametrize("gz,dot", [(False, False), (True, False), (False, True), (True, True)])
def test_load_mnist_dir(tmp_path, gz, dot):
    d, data = _mnist_dir(tmp_path, gz=gz, dot=dot)
    for split, prefix, n in (("train", "train", 7), ("test", "t10k", 3)):
        x, y = load_mnist_dir(d, split)
        assert x.shape == (n, 1, 28, 28) and x.dtype == np.float32
        assert y.shape == (n,) and y.dtype == np.int64
        assert x.min() == 0.0 and x.max() == 1.0
        np.testing.assert_allclose(x[:, 0] * 255, data[prefix][0], atol=1e-4)
        np.testing.assert_array_equal(y, data[prefix][1])


def test_load_mnist_dir_errors(tmp_path):
    with pytest.raises(ValueError, match="'train', 'test'"):
        load_mnist_dir(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_mnist_dir(tmp_path / "nope")
    with pytest.raises(FileNotFoundError) as info:
        load_mnist_dir(tmp_path, "test")
    msg = str(info.value)
    for name in ("t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz",
                 "t10k-images.idx3-ubyte", "t10k-labels-idx1-ubyte.gz"):
        assert name in msg
    # only labels missing
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(FileNotFoundError, match="labels") as info:
        load_mnist_dir(tmp_path, "train")
    assert "images (" not in str(info.value)
    # count mismatch
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8), gz=True)
    with pytest.raises(ValueError, match="2 images but .* 3 labels"):
        load_mnist_dir(tmp_path, "train")
    # wrong image dtype / rank
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), np.int16))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="3-d uint8"):
        load_mnist_dir(tmp_path, "test")


# ---------------------------------------------------------------- DataLoader


def _ds(n=10):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n, dtype=np.int64)
    return x, y


@pytest.mark.parametrize("n,bs,drop,expected", [
    (10, 3, False, [3, 3, 3, 1]),
    (10, 3, True, [3, 3, 3]),
    (9, 3, False, [3, 3, 3]),
    (9, 3, True, [3, 3, 3]),
    (2, 5, False, [2]),
    (2, 5, True, []),
    (0, 4, False, []),
    (5, 1, False, [1] * 5),
])
def test_loader_batch_counts(n, bs, drop, expected):
    for shuffle in (False, True):
        dl = DataLoader(_ds(n), batch_size=bs, shuffle=shuffle, drop_last=drop, seed=0)
        assert len(dl) == len(expected)
        batches = list(dl)
        assert [len(b[1]) for b in batches] == expected
        assert all(len(b) == 2 and len(b[0]) == len(b[1]) for b in batches)


def test_loader_no_shuffle_in_order():
    x, y = _ds(10)
    batches = list(DataLoader((x, y), batch_size=4))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)


def test_loader_shuffle_covers_each_index_once_per_epoch():
    x, y = _ds(23)
    dl = DataLoader((x, y), batch_size=5, shuffle=True, seed=3)
    for _ in range(4):
        batches = list(dl)
        seen = np.concatenate([b[1] for b in batches])
        np.testing.assert_array_equal(np.sort(seen), y)
        for bx, by in batches:  # rows stay paired
            np.testing.assert_array_equal(bx, x[by])


def _epochs(dl, k):
    return [np.concatenate([b[1] for b in dl]) for _ in range(k)]


def test_loader_seeded_determinism_and_epochs_differ():
    ds = _ds(50)
    a = _epochs(DataLoader(ds, batch_size=7, shuffle=True, seed=42), 3)
    b = _epochs(DataLoader(ds, batch_size=7, shuffle=True, seed=42), 3)
    c = _epochs(DataLoader(ds, batch_size=7, shuffle=True, seed=43), 3)
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], np.arange(50))


def test_loader_permutation_drawn_at_iter():
    ds = _ds(30)
    ref = _epochs(DataLoader(ds, batch_size=4, shuffle=True, seed=5), 3)
    dl = DataLoader(ds, batch_size=4, shuffle=True, seed=5)
    first = iter(dl)   # epoch 0's permutation is drawn here
    iter(dl)           # an abandoned epoch still consumes epoch 1's
    np.testing.assert_array_equal(np.concatenate([b[1] for b in first]), ref[0])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in dl]), ref[2])


def test_loader_single_array_tuple_and_list():
    x, _ = _ds(6)
    (b,) = next(iter(DataLoader((x,), batch_size=6)))
    np.testing.assert_array_equal(b, x)
    (b,) = DataLoader([x, x], batch_size=4)  # a list is two samples, as in torch
    assert b.shape == (2, *x.shape)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=-3), "batch_size"),
    (dict(batch_size=2.5), "batch_size"),
    (dict(batch_size=True), "batch_size"),
    (dict(batch_size="4"), "batch_size"),
])
def test_loader_bad_batch_size(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        DataLoader(_ds(4), **kwargs)


def test_loader_bad_dataset():
    x, y = _ds(4)
    with pytest.raises(ValueError, match="equal lengths"):
        DataLoader((x, y[:3]))
    with pytest.raises(ValueError, match="tuple of arrays"):
        DataLoader(x)
    with pytest.raises(ValueError, match="at least one"):
        DataLoader(())
    with pytest.raises(ValueError, match="0-d"):
        DataLoader((x, np.float32(1.0)))
    assert len(DataLoader((x, y), batch_size=np.int64(3))) == 2


def test_idx_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    """A 1 MB file that inflates to 1 GiB: the reader stops at the declared size plus one byte."""
    import tracemalloc
    header = bytes([0, 0, 0x08, 3]) + np.array([1, 28, 28], ">u4").tobytes()
    zeros = gzip.compress(bytes(16 << 20), compresslevel=9)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + bytes(784)) + zeros * 64)
    assert path.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="expected 784 data bytes .* found at least 785"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak


def test_idx_with_zero_samples_names_the_file(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(
        bytes([0, 0, 0x08, 3]) + np.array([0, 28, 28], ">u4").tobytes())
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(
        bytes([0, 0, 0x08, 1]) + np.array([0], ">u4").tobytes())
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: holds 0 images"):
        load_mnist_dir(tmp_path, "train")


# ---- PairedBatchLoader (non-i.i.d. batches of same-label pairs) -----------------------------

def test_paired_loader_batches_are_same_label_pairs_each_example_at_most_once():
    from tinynorm.data import PairedBatchLoader
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 41)
    x = np.arange(41)
    loader = PairedBatchLoader((x, labels), batch_size=6, seed=3)
    pairs_total = sum(int((labels == c).sum()) // 2 for c in range(4))
    assert len(loader) == pairs_total // 3
    seen = []
    for xb, yb in loader:
        assert xb.shape == (6,)
        np.testing.assert_array_equal(yb[0::2], yb[1::2])
        np.testing.assert_array_equal(labels[xb], yb)
        seen.extend(xb.tolist())
    assert len(seen) == len(set(seen)) == 6 * len(loader)
    fresh = PairedBatchLoader((x, labels), batch_size=6, seed=3)
    first = [b[0].tolist() for b in fresh]
    assert first == [b[0].tolist() for b in PairedBatchLoader((x, labels), 6, 3)]
    assert [b[0].tolist() for b in fresh] != first, "each epoch draws new pairs and a new order"


@pytest.mark.parametrize("kwargs, needle", [
    (dict(batch_size=5), "even integer"), (dict(batch_size=0), "even integer"),
    (dict(batch_size=True), "even integer"),
])
def test_paired_loader_bad_arguments(kwargs, needle):
    from tinynorm.data import PairedBatchLoader
    with pytest.raises(ValueError, match=needle):
        PairedBatchLoader((np.zeros(4), np.zeros(4)), **kwargs)
    with pytest.raises(ValueError, match="labels must be 1-D"):
        PairedBatchLoader((np.zeros(4), np.zeros(3)))
