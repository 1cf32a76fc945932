"""tinynorm.testing: the checker must catch a wrong backward, and the strategies draw what they say."""
import numpy as np
import pytest
from hypothesis import given, settings

import tinynorm as tn
from tinynorm.autograd import Function
from tinynorm.testing import arrays, gradcheck, shapes


class _WrongSquare(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, g):
        return g * self.saved[0]


def test_gradcheck_catches_a_wrong_backward():
    x = np.random.default_rng(0).standard_normal((3, 2))
    with pytest.raises(AssertionError, match="gradcheck failed for input 0"):
        gradcheck(lambda t: _WrongSquare.apply(t), [x])
    assert gradcheck(lambda t: t * t, [x])


@settings(max_examples=20, deadline=None)
@given(arrays(shapes(1, 3, 1, 4), np.float32, low=-3, high=3))
def test_arrays_strategy_draws_finite_values_in_range(a):
    assert a.dtype == np.float32 and 1 <= a.ndim <= 3
    assert np.all(np.isfinite(a)) and np.all(np.abs(a) <= 3)


def test_enable_grad_inside_no_grad():
    x = tn.tensor(np.ones(2), requires_grad=True)
    with tn.no_grad():
        with tn.enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.requires_grad and not z.requires_grad
