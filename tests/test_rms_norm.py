"""RMSNorm op and module: the float64 loop oracle, gradients, torch parity, errors.

The oracle (tests/oracles/rms_norm.py) is written from docs/norms.md#rmsnorm; the kernels are
tested in test_rms_norm_kernels.py and test_rms_norm_cuda.py.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
from tinynorm.nn.rms_norm import RMSNorm
from tinynorm.ops.rms_norm import rms_norm
from tinynorm.testing import check_op, hard_arrays, normal_arrays

from oracles.rms_norm import oracle, tol

FAST = settings(max_examples=15, deadline=None)


def cases():
    """(shape, k): input shape and number of normalized trailing axes."""
    return st.tuples(st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple),
                     st.integers(1, 2)).filter(lambda c: c[1] <= len(c[0]))


# ---- op and module against the oracle -------------------------------------------------

@FAST
@given(cases(), st.integers(0, 2**31), st.sampled_from([np.float32, np.float64]), st.booleans())
def test_forward_backward_match_oracle(case, seed, dtype, affine):
    shape, k = case
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    ns = shape[len(shape) - k:]
    w = rng.uniform(0.5, 2, ns).astype(dtype) if affine else None
    xt = tn.tensor(x, requires_grad=True)
    wt = tn.tensor(w, requires_grad=True) if affine else None
    y = rms_norm(xt, ns, wt, eps=1e-5)
    y.backward(dy)
    ey, edx, edw = oracle(x, k, w, 1e-5, dy)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y.numpy(), ey, **tol(dtype))
    np.testing.assert_allclose(xt.grad.numpy(), edx, **tol(dtype))
    if affine:
        np.testing.assert_allclose(wt.grad.numpy(), edw, **tol(dtype))


def test_check_op_against_the_oracle_on_hard_inputs():
    """Forward against the loop oracle, finite differences of x and weight, float32 against
    float64, on constant rows, large offsets, tiny/huge scales and planted NaN/Inf."""
    def case(c):
        shape, k = c
        ns = shape[len(shape) - k:]
        w = st.one_of(st.none(), normal_arrays(ns).map(lambda a: 0.5 + np.abs(a)))
        return st.tuples(hard_arrays(shape, tuple(range(-k, 0)), nonfinite=True), w, st.just(k))
    report = check_op(lambda x, w, k: rms_norm(x, tuple(x.shape[x.ndim - k:]), w, eps=1e-3),
                      lambda x, w, k: oracle(x, k, w, 1e-3), cases().flatmap(case),
                      max_examples=30, seed=0)
    assert report.nonfinite_cases > 0


def test_eps_none_is_dtype_machine_epsilon():
    x32 = np.full((2, 3), 1e-4, np.float32)
    got = rms_norm(tn.tensor(x32), 3).numpy()
    np.testing.assert_allclose(got, oracle(x32, 1, None, float(np.finfo(np.float32).eps)),
                               rtol=1e-6)
    assert not np.allclose(got, oracle(x32, 1, None, 1e-5), rtol=1e-3)
    x64 = np.full((2, 3), 1e-9)
    np.testing.assert_allclose(rms_norm(tn.tensor(x64), (3,)).numpy(),
                               oracle(x64, 1, None, float(np.finfo(np.float64).eps)), rtol=1e-12)


def test_module_parameters_state_dict_and_forward():
    m = RMSNorm((3, 4), dtype=np.float64)
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    assert list(m.state_dict()) == ["weight"]
    assert m.weight.shape == (3, 4) and np.all(m.weight.numpy() == 1)
    rng = np.random.default_rng(0)
    m.weight.data[...] = rng.uniform(0.5, 2, (3, 4))
    x = rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(m(tn.tensor(x)).numpy(),
                               oracle(x, 2, m.weight.numpy(), np.finfo(np.float64).eps),
                               rtol=1e-12)
    bare = RMSNorm(4, eps=1e-3, elementwise_affine=False)
    assert list(bare.parameters()) == [] and bare.weight is None
    assert "eps=0.001" in repr(bare) and "elementwise_affine=False" in repr(bare)


@pytest.mark.parametrize("bad, match", [
    (dict(x=np.zeros((2, 3)), ns=(4,)), "normalized_shape"),
    (dict(x=np.zeros((3,)), ns=(2, 3)), "normalized_shape"),
    (dict(x=np.zeros((2, 3)), ns=(3,), w=np.ones(4)), "weight has shape"),
    (dict(x=np.zeros((2, 3), np.int64), ns=(3,)), "dtype int64"),
    (dict(x=np.zeros((2, 3), np.float16), ns=(3,)), "dtype float16"),
    (dict(x=np.zeros((2, 3)), ns=(3,), eps=-1.0), "eps"),
    (dict(x=np.zeros((2, 3)), ns="abc"), "normalized_shape"),
])
def test_errors_name_the_problem(bad, match):
    w = bad.get("w")
    with pytest.raises(ValueError, match=match):
        rms_norm(tn.tensor(bad["x"]), bad["ns"], None if w is None else tn.tensor(w),
                 eps=bad.get("eps"))


# ---- torch parity ---------------------------------------------------------------------

@settings(max_examples=10, deadline=None)
@given(cases(), st.integers(0, 2**31), st.sampled_from([None, 1e-5]))
def test_matches_torch_float32(case, seed, eps):
    torch = pytest.importorskip("torch")
    shape, k = case
    ns = shape[len(shape) - k:]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.uniform(0.5, 2, ns).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    xt, wt = tn.tensor(x, requires_grad=True), tn.tensor(w, requires_grad=True)
    y = rms_norm(xt, ns, wt, eps)
    y.backward(dy)
    X, W = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    Y = torch.nn.functional.rms_norm(X, ns, W, eps)
    Y.backward(torch.tensor(dy))
    t = dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y.numpy(), Y.detach().numpy(), **t)
    np.testing.assert_allclose(xt.grad.numpy(), X.grad.numpy(), **t)
    np.testing.assert_allclose(wt.grad.numpy(), W.grad.numpy(), **t)
