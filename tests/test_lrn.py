"""LRN op and module: the float64 loop oracle, gradients, torch parity, errors.

The oracle (tests/oracles/lrn.py) is written from docs/norms.md#local-response-normalization;
the kernels are tested in test_lrn_kernels.py and test_lrn_cuda.py.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
from tinynorm.nn.lrn import LocalResponseNorm
from tinynorm.ops.lrn import local_response_norm
from tinynorm.testing import check_op, hard_arrays

from oracles.lrn import oracle, tol

FAST = settings(max_examples=15, deadline=None)
BETAS = [0.75, 0.5, 0.3, 1.0]


def lrn_shapes():
    return st.lists(st.integers(1, 4), min_size=1, max_size=3).flatmap(
        lambda rest: st.tuples(st.integers(1, 3), st.integers(1, 9)).map(lambda nc: nc + tuple(rest)))


def lrn_args():
    return st.tuples(st.integers(1, 7), st.floats(0.01, 2.0), st.sampled_from(BETAS),
                     st.floats(0.5, 2.0))


# ---- op and module against the oracle -------------------------------------------------

@FAST
@given(lrn_shapes(), lrn_args(), st.integers(0, 2**31), st.sampled_from([np.float32, np.float64]))
def test_forward_backward_match_oracle(shape, args, seed, dtype):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    xt = tn.tensor(x, requires_grad=True)
    y = local_response_norm(xt, *args)
    y.backward(dy)
    eb, eda = oracle(x, *args, dy=dy)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y.numpy(), eb, **tol(dtype))
    np.testing.assert_allclose(xt.grad.numpy(), eda, **tol(dtype))


def test_check_op_against_the_oracle_on_hard_inputs():
    """Forward against the loop oracle, finite differences, float32 against float64, on
    constant channels, large offsets, tiny/huge scales and planted NaN/Inf."""
    inputs = st.tuples(lrn_shapes(), lrn_args()).flatmap(
        lambda t: st.tuples(hard_arrays(t[0], None, nonfinite=True), *map(st.just, t[1])))
    report = check_op(local_response_norm, lambda x, *args: oracle(x, *args), inputs,
                      max_examples=30, seed=0)
    assert report.nonfinite_cases > 0


def test_alexnet_variant_is_alpha_times_n():
    """AlexNet: b = a / (2 + 1e-4 * sum a^2)^0.75 over n = 5 channels, alpha not divided by n."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 3, 3)) * 20
    C = 7
    expect = np.empty_like(x)
    for c in range(C):
        s = sum(x[:, j] ** 2 for j in range(max(0, c - 2), min(C - 1, c + 2) + 1))
        expect[:, c] = x[:, c] / (2.0 + 1e-4 * s) ** 0.75
    got = local_response_norm(tn.tensor(x), 5, alpha=1e-4 * 5, beta=0.75, k=2.0).numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-12)


def test_module_has_no_state_and_matches_functional():
    m = LocalResponseNorm(3, alpha=0.1, beta=0.5, k=2.0)
    assert list(m.parameters()) == [] and list(m.state_dict()) == []
    assert repr(m) == "LocalResponseNorm(3, alpha=0.1, beta=0.5, k=2.0)"
    x = np.random.default_rng(1).standard_normal((2, 5, 4))
    np.testing.assert_allclose(m(tn.tensor(x)).numpy(), oracle(x, 3, 0.1, 0.5, 2.0), rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(x=np.zeros((2, 3))), "3D or higher"),
    (dict(x=np.zeros((2, 3, 4), np.int64)), "int64"),
    (dict(x=np.zeros((2, 3, 4), np.float16)), "float16"),
    (dict(size=0), "size must be a positive integer"),
    (dict(size=2.5), "size must be a positive integer"),
    (dict(alpha=np.nan), "alpha"),
    (dict(beta="x"), "beta"),
    (dict(k=np.inf), "k must be finite"),
])
def test_errors_name_the_problem(kwargs, match):
    args = dict(x=np.zeros((2, 3, 4)), size=3, alpha=1e-4, beta=0.75, k=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        local_response_norm(tn.tensor(args.pop("x")), **args)


# ---- torch parity ---------------------------------------------------------------------

@settings(max_examples=10, deadline=None)
@given(lrn_shapes(), lrn_args(), st.integers(0, 2**31))
def test_matches_torch_float32(shape, args, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    xt = tn.tensor(x, requires_grad=True)
    y = local_response_norm(xt, *args)
    y.backward(dy)
    X = torch.tensor(x, requires_grad=True)
    Y = torch.nn.functional.local_response_norm(X, *args)
    Y.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.numpy(), Y.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(xt.grad.numpy(), X.grad.numpy(), rtol=1e-5, atol=1e-5)
