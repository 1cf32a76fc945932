"""Leaves handed the same gradient array by one backward never share ``.grad`` memory.

The first-order sweep adopts a leaf's first gradient without a copy when nothing else was handed
that memory; these tests hand one array (or views of one array) to several leaves, or hand the
caller's own gradient on unchanged, and check that every ``.grad`` is its own memory.
"""
import numpy as np
import pytest

import tinynorm as tn
from tinynorm.autograd import Function


def _leaves(*shapes, dtype=np.float64):
    rng = np.random.default_rng(0)
    return [tn.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]


def _assert_separate(*tensors, outside=()):
    grads = [t.grad.data for t in tensors]
    for i, g in enumerate(grads):
        for other in grads[i + 1:] + list(outside):
            assert not np.shares_memory(g, other)
    before = [g.copy() for g in grads]
    grads[0] += 100.0
    for g, b in zip(grads[1:], before[1:]):
        np.testing.assert_array_equal(g, b)
    for o in outside:
        assert not np.shares_memory(grads[0], o)


class SameArrayTwice(Function):
    """``a + b`` whose backward returns one array for both inputs, or the array and a view of it."""

    def forward(self, a, b, view=False):
        self.view = view
        return a + b

    def backward(self, g):
        out = g * 2.0
        return out, (out.reshape(out.shape)[...] if self.view else out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_hands_one_array_to_both_leaves(dtype):
    a, b, w = _leaves((3, 4), (3, 4), (3, 4), dtype=dtype)
    ((a + b) * w).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), w.data)
    np.testing.assert_array_equal(b.grad.numpy(), w.data)
    _assert_separate(a, b)


@pytest.mark.parametrize("view", [False, True])
def test_a_backward_returning_one_array_for_two_inputs(view):
    a, b = _leaves((5,), (5,))
    SameArrayTwice.apply(a, b, view=view).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full(5, 2.0))
    np.testing.assert_array_equal(b.grad.numpy(), np.full(5, 2.0))
    _assert_separate(a, b)


def test_the_callers_gradient_is_copied_not_adopted():
    a, b = _leaves((2, 3), (2, 3))
    g = np.arange(6.0).reshape(2, 3)
    (a + b).backward(g)
    np.testing.assert_array_equal(a.grad.numpy(), g)
    np.testing.assert_array_equal(b.grad.numpy(), g)
    _assert_separate(a, b, outside=[g])
    np.testing.assert_array_equal(g, np.arange(6.0).reshape(2, 3))


def test_the_implicit_root_gradient_is_not_shared():
    a, b = _leaves((), ())
    (a + b).backward()
    assert a.grad.item() == 1.0 and b.grad.item() == 1.0
    _assert_separate(a, b)


def test_a_later_backward_accumulates_into_each_leaf_alone():
    a, b, w = _leaves((4,), (4,), (4,))
    ((a + b) * w).sum().backward()
    ((a + b) * w).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), 2 * w.data)
    np.testing.assert_array_equal(b.grad.numpy(), 2 * w.data)
    _assert_separate(a, b)


def test_with_a_hook_on_one_leaf():
    a, b, w = _leaves((3,), (3,), (3,))
    seen = []
    a.register_hook(lambda g: seen.append(g.numpy().copy()))
    ((a + b) * w).sum().backward()
    np.testing.assert_array_equal(seen[0], w.data)
    _assert_separate(a, b)


def test_under_create_graph():
    a, b, w = _leaves((3,), (3,), (3,))
    ((a + b) * w).sum().backward(create_graph=True)
    np.testing.assert_array_equal(a.grad.numpy(), w.data)
    _assert_separate(a, b)


def test_the_same_leaf_twice_gets_the_sum():
    (a,) = _leaves((3,))
    SameArrayTwice.apply(a, a).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full(3, 4.0))
