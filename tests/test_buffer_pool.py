"""The buffer pool (tinynorm.buffer_pool): what it hands out and when it may hand a buffer out again.

A pooled buffer is reused only when ``sys.getrefcount`` says nothing but the pool holds it, so every
test here keeps some reference alive (a view, a Tensor, an array saved for backward, an adopted
``.grad``) and checks that the next request does not get that memory.
"""
import importlib.util

import numpy as np
import pytest

import tinynorm as tn
from tinynorm import buffer_pool
from tinynorm import functional as F

MIN = buffer_pool.MIN_POOLED_BYTES
N32 = MIN // 4  # float32 elements in the smallest pooled request


@pytest.fixture(autouse=True)
def fresh_pool(monkeypatch):
    """An empty pool for each test, so that buffers other tests left behind take no part."""
    monkeypatch.setattr(buffer_pool, "_buckets", {})
    monkeypatch.setattr(buffer_pool, "_pooled", [0])


def _pooled_bases(nbytes):
    return buffer_pool._buckets.get(nbytes, [])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8])
@pytest.mark.parametrize("shape_of", [lambda n: (n,), lambda n: (4, n // 4), lambda n: (2, 8, n // 16)])
def test_returns_the_requested_c_contiguous_aligned_array(dtype, shape_of):
    shape = shape_of(MIN // np.dtype(dtype).itemsize)
    a = buffer_pool.empty(np, shape, dtype)
    assert type(a) is np.ndarray
    assert a.shape == shape and a.dtype == np.dtype(dtype)
    assert a.flags.c_contiguous and a.flags.aligned and a.flags.writeable
    assert a.ctypes.data % 16 == 0
    (base,) = _pooled_bases(a.nbytes)
    assert base.dtype == np.uint8 and base.shape == (a.nbytes,)
    assert a.base is base and a.ctypes.data == base.ctypes.data
    a[...] = 7  # the whole extent is writable memory of the buffer
    assert np.all(base.view(a.dtype) == 7)


def test_below_the_threshold_nothing_is_pooled():
    a = buffer_pool.empty(np, (N32 - 1,), np.float32)
    assert a.nbytes == MIN - 4 and a.flags.owndata
    assert buffer_pool._buckets == {} and buffer_pool._pooled == [0]
    del a
    b = buffer_pool.empty(np, (0, 5), np.float64)
    assert b.shape == (0, 5) and b.flags.owndata and buffer_pool._buckets == {}


def test_at_the_threshold_the_buffer_is_pooled_and_reused_once_free():
    a = buffer_pool.empty(np, (N32,), np.float32)
    assert not a.flags.owndata and buffer_pool._pooled == [MIN]
    address = a.ctypes.data
    del a
    b = buffer_pool.empty(np, (N32,), np.float32)
    assert b.ctypes.data == address
    assert len(_pooled_bases(MIN)) == 1 and buffer_pool._pooled == [MIN]


def test_a_free_buffer_is_reused_under_another_dtype_and_shape_of_the_same_size():
    a = buffer_pool.empty(np, (N32 // 2,), np.float64)
    address = a.ctypes.data
    del a
    b = buffer_pool.empty(np, (16, N32 // 16), np.float32)
    assert b.ctypes.data == address
    assert b.dtype == np.float32 and b.shape == (16, N32 // 16) and b.flags.c_contiguous


def test_a_live_array_is_never_handed_out_twice():
    held = [buffer_pool.empty(np, (N32,), np.float32) for _ in range(3)]
    for i, a in enumerate(held):
        for b in held[i + 1:]:
            assert not np.shares_memory(a, b)
    assert len(_pooled_bases(MIN)) == 3 and buffer_pool._pooled == [3 * MIN]
    freed = held.pop(1).ctypes.data
    c = buffer_pool.empty(np, (N32,), np.float32)
    assert c.ctypes.data == freed
    assert not any(np.shares_memory(c, a) for a in held)


@pytest.mark.parametrize("keep", [
    lambda a: a[::2],
    lambda a: a.reshape(2, -1)[1],
    lambda a: a.view(np.int32),
    lambda a: a.T,
])
def test_a_live_view_keeps_its_buffer_out_of_the_pool(keep):
    a = buffer_pool.empty(np, (N32,), np.float32)
    view = keep(a)
    del a
    b = buffer_pool.empty(np, (N32,), np.float32)
    assert not np.shares_memory(b, view)
    del view, b
    c = buffer_pool.empty(np, (N32,), np.float32)
    assert len(_pooled_bases(MIN)) == 2  # both buffers are free again: one of them comes back
    assert any(c.base is base for base in _pooled_bases(MIN))


def test_a_tensor_keeps_its_buffer_out_of_the_pool():
    t = tn.Tensor(buffer_pool.empty(np, (N32,), np.float32))
    t.data[...] = 1.0
    b = buffer_pool.empty(np, (N32,), np.float32)
    b[...] = 2.0
    assert not np.shares_memory(b, t.data)
    assert np.all(t.data == 1.0)


def test_an_array_saved_for_backward_is_not_reused_before_backward():
    rng = np.random.default_rng(0)
    x = tn.tensor(rng.standard_normal(N32).astype(np.float32), requires_grad=True)
    y = F.relu(x)  # ReLU's output comes from the pool and is saved for its backward
    relu = y._node.fn
    assert any(relu.saved[0].base is base for base in _pooled_bases(MIN))
    loss = y.sum()
    del y
    other = F.relu(-x)  # the same size again, while the first output is held by the tape
    assert not np.shares_memory(other.data, relu.saved[0])
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), (x.data > 0).astype(np.float32))


def test_an_adopted_gradient_keeps_its_buffer_out_of_the_pool():
    rng = np.random.default_rng(1)
    x = tn.tensor(rng.standard_normal(N32).astype(np.float32), requires_grad=True)
    F.relu(x).sum().backward()
    expected = (x.data > 0).astype(np.float32)
    b = buffer_pool.empty(np, (N32,), np.float32)
    b[...] = 5.0
    assert not np.shares_memory(b, x.grad.data)
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_the_pool_stops_growing_at_its_limit(monkeypatch):
    monkeypatch.setattr(buffer_pool, "POOL_LIMIT_BYTES", 2 * MIN)
    held = [buffer_pool.empty(np, (N32,), np.float32) for _ in range(3)]
    assert [a.flags.owndata for a in held] == [False, False, True]
    assert buffer_pool._pooled == [2 * MIN] and len(_pooled_bases(MIN)) == 2
    bigger = buffer_pool.empty(np, (2 * N32,), np.float32)  # would pass the limit too
    assert bigger.flags.owndata and _pooled_bases(2 * MIN) == []
    del held[0]
    again = buffer_pool.empty(np, (N32,), np.float32)  # a free pooled buffer is still reused
    assert not again.flags.owndata


def _load_fresh(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("TINYNORM_POOL_BYTES", raising=False)
    else:
        monkeypatch.setenv("TINYNORM_POOL_BYTES", value)
    spec = importlib.util.spec_from_file_location("_fresh_buffer_pool", buffer_pool.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_limit_comes_from_tinynorm_pool_bytes(monkeypatch):
    assert _load_fresh(monkeypatch, None).POOL_LIMIT_BYTES == 2 << 30
    fresh = _load_fresh(monkeypatch, "0")
    assert fresh.POOL_LIMIT_BYTES == 0
    a = fresh.empty(np, (N32,), np.float32)
    assert a.flags.owndata and not any(fresh._buckets.values()) and fresh._pooled == [0]
    assert _load_fresh(monkeypatch, str(3 * MIN)).POOL_LIMIT_BYTES == 3 * MIN


def test_other_array_modules_allocate_through_their_own_empty():
    calls = []

    class FakeModule:
        @staticmethod
        def empty(shape, dtype=None):
            calls.append((shape, dtype))
            return "device array"

    assert buffer_pool.empty(FakeModule, (N32 * 4,), np.float32) == "device array"
    assert calls == [((N32 * 4,), np.float32)] and buffer_pool._buckets == {}
