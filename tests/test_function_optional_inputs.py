"""``Function.apply`` takes ``None`` for an absent optional input (weight, bias), as torch does."""
import numpy as np
import pytest

import tinynorm as tn
from tinynorm.autograd import Function


class ScaleShift(Function):
    """y = x * w + b, where w and b may each be absent."""

    def forward(self, x, w, b):
        self.save_for_backward(x, w)
        y = x.copy() if w is None else x * w
        return y if b is None else y + b

    def backward(self, g):
        x, w = self.saved
        return (g if w is None else g * w,
                None if w is None else (g * x).sum(axis=0),
                g.sum(axis=0) if self.needs_input_grad[2] else None)


@pytest.mark.parametrize("with_w,with_b", [(False, False), (True, False), (False, True), (True, True)])
def test_absent_inputs_reach_forward_as_none_and_get_no_gradient(with_w, with_b):
    rng = np.random.default_rng(0)
    x = tn.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    w = tn.tensor(rng.standard_normal(3), requires_grad=True) if with_w else None
    b = tn.tensor(rng.standard_normal(3), requires_grad=True) if with_b else None
    y = ScaleShift.apply(x, w, b)
    expect = x.data * (w.data if with_w else 1) + (b.data if with_b else 0)
    np.testing.assert_allclose(y.data, expect)
    fn = y.grad_fn.fn
    assert fn.needs_input_grad == (True, with_w, with_b)
    assert [t is None for t in y.grad_fn.inputs] == [False, not with_w, not with_b]
    assert [f is None for f, _ in y.grad_fn.next_functions] == [False, not with_w, not with_b]
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, np.broadcast_to(w.data if with_w else 1.0, (4, 3)))
    if with_w:
        np.testing.assert_allclose(w.grad.data, x.data.sum(axis=0))
    if with_b:
        np.testing.assert_allclose(b.grad.data, np.full(3, 4.0))


def test_all_present_inputs_constant_records_nothing():
    x = tn.tensor(np.ones((2, 3)))
    y = ScaleShift.apply(x, None, None)
    assert y.grad_fn is None and not y.requires_grad


def test_tape_table_and_second_order_skip_absent_inputs():
    x = tn.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = ScaleShift.apply(x, None, tn.tensor(np.ones(3)))
    text = tn.autograd.format_tape(y)
    assert "[2, 3] [3] -> [2, 3]" in text
    (gx,) = tn.autograd.grad(y.sum(), [x], create_graph=True)
    np.testing.assert_allclose(gx.data, np.ones((2, 3)))
