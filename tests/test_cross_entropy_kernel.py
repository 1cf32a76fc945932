"""The fused CPU cross-entropy kernel: against a naive float64 loop, the NumPy path, and finite differences."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
import tinynorm.functional as F
from tinynorm.kernels.cpu import cross_entropy as K
from tinynorm.ops import loss as L
from tinynorm.testing import gradcheck

FAST = settings(max_examples=15, deadline=None)


def naive(x, t, weight, ignore_index, eps, reduction):
    """Loss and d loss / d x (upstream gradient 1 per output) by loops in float64."""
    n, c = x.shape
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    per, wt, logp = [], [], []
    for i in range(n):
        m = max(x[i])
        lse = m + math.log(sum(math.exp(v - m) for v in x[i]))
        row = [v - lse for v in x[i]]
        logp.append(row)
        if t[i] == ignore_index:
            per.append(0.0)
            wt.append(0.0)
            continue
        wt.append(w[t[i]])
        per.append(-(1 - eps) * w[t[i]] * row[t[i]] - eps / c * sum(w[j] * row[j] for j in range(c)))
    scale = {"mean": 1 / sum(wt) if sum(wt) else math.nan, "sum": 1.0, "none": 1.0}[reduction]
    out = per if reduction == "none" else sum(per) * scale
    grad = np.zeros((n, c))
    for i in range(n):
        if t[i] == ignore_index:
            continue
        for j in range(c):
            p = math.exp(logp[i][j])
            grad[i, j] = ((1 - eps) * w[t[i]] * (p - (j == t[i])) + eps / c * (p * w.sum() - w[j])) * scale
    return np.asarray(out), grad


def numpy_path(x, t, **kw):
    """The array-module path of CrossEntropy, which non-NumPy arrays take."""
    fn = L.CrossEntropy()
    fn.needs_input_grad = (True, False)
    saved = L._host_kernel
    L._host_kernel = lambda *a: False
    try:
        out = fn.forward(x, t, **kw)
        g = np.ones(out.shape, x.dtype)
        return out, fn.backward(g)[0]
    finally:
        L._host_kernel = saved


cases = st.tuples(st.integers(1, 6), st.integers(1, 7), st.sampled_from(["mean", "sum", "none"]),
                  st.sampled_from([0.0, 0.2]), st.booleans(), st.booleans(), st.integers(0, 2**31))


@FAST
@given(cases, st.sampled_from([np.float32, np.float64]))
def test_matches_naive_loop_and_numpy_path(case, dtype):
    n, c, reduction, eps, weighted, ignore, seed = case
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((n, c))).astype(dtype)
    t = rng.integers(0, c, n)
    if ignore:
        t[rng.random(n) < 0.4] = -100
    weight = rng.random(c).astype(dtype) + 0.1 if weighted else None
    kw = dict(weight=weight, ignore_index=-100, reduction=reduction, label_smoothing=eps)
    xt = tn.tensor(x, requires_grad=True)
    out = F.cross_entropy(xt, t, weight=weight, reduction=reduction, label_smoothing=eps)
    out.backward(np.ones(out.shape, dtype))
    want, want_grad = naive(x.astype(np.float64), t, weight, -100, eps, reduction)
    tol = 1e-10 if dtype == np.float64 else 2e-5
    assert out.dtype == dtype and xt.grad.dtype == dtype
    np.testing.assert_allclose(out.numpy(), want, rtol=tol, atol=tol)
    np.testing.assert_allclose(xt.grad.numpy(), want_grad, rtol=tol, atol=tol)
    ref, ref_grad = numpy_path(x, t, **kw)
    np.testing.assert_allclose(out.numpy(), ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(xt.grad.numpy(), ref_grad, rtol=tol, atol=tol)


@FAST
@given(st.integers(1, 4), st.integers(2, 5), st.sampled_from([0.0, 0.3]), st.integers(0, 2**31))
def test_gradcheck_float64(n, c, eps, seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, c, n)
    gradcheck(lambda x: F.cross_entropy(x, t, label_smoothing=eps, reduction="none"),
              [rng.standard_normal((n, c))])


def test_nan_inf_and_all_ignored_match_numpy_path():
    x = np.array([[np.nan, 1.0, 2.0], [np.inf, 0.0, 1.0], [1.0, 2.0, 3.0]], np.float32)
    t = np.array([1, 0, 2])
    for reduction in ("mean", "sum", "none"):
        out = K.forward(x, t, None, -100, 0.0, reduction)[0]
        with np.errstate(invalid="ignore"):
            ref, _ = numpy_path(x, t, reduction=reduction)
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    out = F.cross_entropy(tn.tensor(x[2:], requires_grad=True), np.array([-100]))
    assert np.isnan(out.item())


def test_out_of_range_target_raises_without_touching_memory():
    with pytest.raises(IndexError, match="out of bounds"):
        L.CrossEntropy.apply(tn.tensor(np.zeros((2, 3), np.float32)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 3\)"):
        F.cross_entropy(tn.tensor(np.zeros((2, 3), np.float32)), np.array([0, -1]))
