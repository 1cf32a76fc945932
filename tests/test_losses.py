"""The common losses and max/min(dim): naive float64 loop oracles, finite differences in float64
on hypothesis-drawn shapes, float32 against float64, torch parity (when installed), bad inputs."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
import tinynorm.functional as F
from tinynorm import nn
from tinynorm.testing import gradcheck

FAST = settings(max_examples=12, deadline=None)
REDUCTIONS = ["mean", "sum", "none"]


# ---- oracles: explicit loops over elements, float64 ---------------------------------------

def _reduce(per, reduction, denom=None):
    if reduction == "none":
        return np.array(per)
    total = 0.0
    for v in np.ravel(per):
        total += v
    if reduction == "sum":
        return np.array(total)
    n = np.size(per) if denom is None else denom
    return np.array(total / n if n else math.nan)


def _elementwise(fn, x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    out = np.empty(x.shape)
    for i in np.ndindex(x.shape):
        out[i] = fn(x[i], y[i])
    return out


def mse_oracle(x, y, reduction):
    return _reduce(_elementwise(lambda a, b: (a - b) ** 2, x, y), reduction)


def l1_oracle(x, y, reduction):
    return _reduce(_elementwise(lambda a, b: abs(a - b), x, y), reduction)


def smooth_l1_oracle(x, y, reduction, beta=1.0):
    def one(a, b):
        d = abs(a - b)
        return 0.5 * d * d / beta if d < beta else d - 0.5 * beta
    return _reduce(_elementwise(one, x, y), reduction)


def bce_oracle(x, y, reduction):
    def one(p, t):
        lp = max(math.log(p), -100.0) if p > 0 else -100.0
        lq = max(math.log(1 - p), -100.0) if p < 1 else -100.0
        return -(t * lp + (1 - t) * lq)
    return _reduce(_elementwise(one, x, y), reduction)


def bce_logits_oracle(x, y, reduction, pos_weight=1.0):
    def one(z, t):
        log_sig = -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))
        log_one_minus = log_sig - z
        return -(pos_weight * t * log_sig + (1 - t) * log_one_minus)
    return _reduce(_elementwise(one, x, y), reduction)


def nll_oracle(x, t, reduction, weight=None, ignore_index=-100):
    x = np.asarray(x, np.float64)
    c = x.shape[1]
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    per = np.zeros(t.shape)
    denom = 0.0
    for idx in np.ndindex(t.shape):
        k = int(t[idx])
        if k == ignore_index:
            continue
        pos = (idx[0], k) + idx[1:]
        per[idx] = -w[k] * x[pos]
        denom += w[k]
    return _reduce(per, reduction, denom)


# ---- strategies -----------------------------------------------------------------------------

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


def _pair(seed, shape, dtype, kind):
    rng = np.random.default_rng(seed)
    if kind == "prob":
        return rng.uniform(0.05, 0.95, shape).astype(dtype), rng.uniform(0, 1, shape).astype(dtype)
    return (rng.standard_normal(shape) * 2).astype(dtype), rng.standard_normal(shape).astype(dtype)


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


ELEMENTWISE = [
    ("mse", F.mse_loss, mse_oracle, "real", True),
    ("l1", F.l1_loss, l1_oracle, "real", True),
    ("smooth_l1", F.smooth_l1_loss, smooth_l1_oracle, "real", False),
    ("bce", F.binary_cross_entropy, bce_oracle, "prob", False),
    ("bce_logits", F.binary_cross_entropy_with_logits, bce_logits_oracle, "real", False),
]


@pytest.mark.parametrize("name, fn, oracle, kind, target_grad", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
@FAST
@given(shape=shapes, seed=st.integers(0, 2**31), dtype=st.sampled_from([np.float32, np.float64]),
       reduction=st.sampled_from(REDUCTIONS))
def test_elementwise_losses_match_the_oracle(name, fn, oracle, kind, target_grad, shape, seed, dtype,
                                             reduction):
    x, y = _pair(seed, shape, dtype, kind)
    out = fn(tn.tensor(x), tn.tensor(y), reduction=reduction)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), oracle(x, y, reduction), **tol(dtype))


@pytest.mark.parametrize("name, fn, oracle, kind, target_grad", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
@FAST
@given(shape=shapes, seed=st.integers(0, 2**31), reduction=st.sampled_from(REDUCTIONS))
def test_elementwise_losses_gradcheck_float64(name, fn, oracle, kind, target_grad, shape, seed, reduction):
    x, y = _pair(seed, shape, np.float64, kind)
    gradcheck(lambda a, b: fn(a, b, reduction=reduction), [x, y], wrt=[0, 1] if target_grad else [0])


def _nll_case(seed, shape):
    rng = np.random.default_rng(seed)
    n, c, rest = shape[0], shape[1], shape[2:]
    x = rng.standard_normal((n, c) + rest)
    t = rng.integers(0, c, (n,) + rest)
    t[rng.random(t.shape) < 0.2] = -100
    w = rng.uniform(0.5, 2, c)
    return x, t, w


nll_shapes = st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple)


@FAST
@given(shape=nll_shapes, seed=st.integers(0, 2**31), dtype=st.sampled_from([np.float32, np.float64]),
       reduction=st.sampled_from(REDUCTIONS), weighted=st.booleans())
def test_nll_loss_matches_the_oracle(shape, seed, dtype, reduction, weighted):
    x, t, w = _nll_case(seed, shape)
    w = w if weighted else None
    out = F.nll_loss(tn.tensor(x.astype(dtype)), t, weight=w, reduction=reduction)
    expect = nll_oracle(x.astype(dtype), t, reduction, w)
    np.testing.assert_allclose(out.numpy(), expect, **tol(dtype), equal_nan=True)


@FAST
@given(shape=nll_shapes, seed=st.integers(0, 2**31), reduction=st.sampled_from(REDUCTIONS))
def test_nll_loss_gradcheck_float64(shape, seed, reduction):
    x, t, w = _nll_case(seed, shape)
    if reduction == "mean" and not (t != -100).any():
        t.flat[0] = 0
    gradcheck(lambda a: F.nll_loss(a, t, weight=w, reduction=reduction), [x])


def test_bce_clamps_its_logs_at_minus_100_and_its_gradient_stays_finite():
    x = tn.tensor(np.array([0.0, 1.0, 0.5]), requires_grad=True)
    y = np.array([1.0, 0.0, 1.0])
    loss = F.binary_cross_entropy(x, y, reduction="none")
    np.testing.assert_allclose(loss.numpy(), [100.0, 100.0, math.log(2)])
    loss.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_bce_with_logits_is_stable_for_huge_logits():
    x = tn.tensor(np.array([1000.0, -1000.0], np.float32), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, np.array([0.0, 1.0], np.float32), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [1000.0, 1000.0])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, -1.0])


def test_loss_modules_call_their_functions():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0.1, 0.9, (3, 4)), rng.uniform(0, 1, (3, 4))
    for module, fn in [(nn.MSELoss(), F.mse_loss), (nn.L1Loss(reduction="sum"), F.l1_loss),
                       (nn.SmoothL1Loss(beta=0.5), F.smooth_l1_loss), (nn.BCELoss(), F.binary_cross_entropy),
                       (nn.BCEWithLogitsLoss(), F.binary_cross_entropy_with_logits)]:
        kw = {k: getattr(module, k) for k in ("reduction", "beta") if hasattr(module, k)}
        np.testing.assert_array_equal(module(tn.tensor(x), tn.tensor(y)).numpy(),
                                      fn(tn.tensor(x), tn.tensor(y), **kw).numpy())
    t = np.array([0, 3, 1])
    np.testing.assert_array_equal(nn.NLLLoss()(tn.tensor(x), t).numpy(), F.nll_loss(tn.tensor(x), t).numpy())


# ---- max / min along a dim ------------------------------------------------------------------

def extremum_oracle(x, dim, op):
    """Values and first indices of the extremum along ``dim``, by walking each slice."""
    moved = np.moveaxis(np.asarray(x, np.float64), dim, -1)
    values, indices = np.empty(moved.shape[:-1]), np.empty(moved.shape[:-1], np.int64)
    for i in np.ndindex(moved.shape[:-1]):
        best, where = moved[i][0], 0
        for j in range(1, moved.shape[-1]):
            v = moved[i][j]
            if (v > best) if op == "max" else (v < best):
                best, where = v, j
        values[i], indices[i] = best, where
    return values, indices


@FAST
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), seed=st.integers(0, 2**31),
       op=st.sampled_from(["max", "min"]), keepdim=st.booleans(), data=st.data())
def test_max_min_dim_match_the_oracle_and_finite_differences(shape, seed, op, keepdim, data):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.random.default_rng(seed).standard_normal(shape)
    values, indices = getattr(tn.tensor(x), op)(dim, keepdim=keepdim)
    ev, ei = extremum_oracle(x, dim, op)
    if keepdim:
        ev, ei = np.expand_dims(ev, dim), np.expand_dims(ei, dim)
    np.testing.assert_array_equal(values.numpy(), ev)
    np.testing.assert_array_equal(indices.numpy(), ei)
    assert indices.dtype == np.int64
    arg = getattr(tn.tensor(x), "arg" + op)(dim=dim, keepdim=keepdim)
    np.testing.assert_array_equal(arg.numpy(), ei)
    gradcheck(lambda a: getattr(a, op)(dim, keepdim=keepdim)[0], [x])
    gradcheck(lambda a: getattr(a, op)(), [x])


def test_max_of_all_shares_the_gradient_between_ties_like_torch():
    x = tn.tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.5, 0.5])


# ---- torch parity ---------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse", "l1", "smooth_l1", "bce", "bce_logits", "nll", "nll_weighted"])
def test_losses_match_torch_value_and_gradient_float32(name, reduction):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    rng = np.random.default_rng(1)
    shape = (5, 4, 3)
    if name in ("nll", "nll_weighted"):
        x = rng.standard_normal(shape).astype(np.float32)
        t = rng.integers(0, 4, (5, 3))
        t[0, 0] = -100
        w = rng.uniform(0.5, 2, 4).astype(np.float32) if name == "nll_weighted" else None
        ours = lambda a: F.nll_loss(a, t, weight=w, reduction=reduction)  # noqa: E731
        theirs = lambda a: TF.nll_loss(a, torch.tensor(t), reduction=reduction,  # noqa: E731
                                       weight=None if w is None else torch.tensor(w))
    else:
        kind = "prob" if name == "bce" else "real"
        x, y = _pair(2, shape, np.float32, kind)
        fn, tfn = {"mse": (F.mse_loss, TF.mse_loss), "l1": (F.l1_loss, TF.l1_loss),
                   "smooth_l1": (F.smooth_l1_loss, TF.smooth_l1_loss),
                   "bce": (F.binary_cross_entropy, TF.binary_cross_entropy),
                   "bce_logits": (F.binary_cross_entropy_with_logits,
                                  TF.binary_cross_entropy_with_logits)}[name]
        ours = lambda a: fn(a, tn.tensor(y), reduction=reduction)  # noqa: E731
        theirs = lambda a: tfn(a, torch.tensor(y), reduction=reduction)  # noqa: E731
    g = rng.standard_normal(shape[:1] + shape[2:] if name.startswith("nll") else shape).astype(np.float32)
    a = tn.tensor(x, requires_grad=True)
    out = ours(a)
    ta = torch.tensor(x, requires_grad=True)
    tout = theirs(ta)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-5, atol=1e-5)
    cot = g if reduction == "none" else np.float32(1.3)
    out.backward(np.asarray(cot, np.float32))
    tout.backward(torch.tensor(cot))
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_bce_with_logits_pos_weight_and_weight_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((6, 3)).astype(np.float32), rng.uniform(0, 1, (6, 3)).astype(np.float32)
    pw, w = rng.uniform(0.5, 3, 3).astype(np.float32), rng.uniform(0.5, 2, (6, 1)).astype(np.float32)
    a = tn.tensor(x, requires_grad=True)
    out = F.binary_cross_entropy_with_logits(a, y, weight=w, pos_weight=pw)
    out.backward()
    ta = torch.tensor(x, requires_grad=True)
    tout = torch.nn.functional.binary_cross_entropy_with_logits(ta, torch.tensor(y), weight=torch.tensor(w),
                                                                pos_weight=torch.tensor(pw))
    tout.backward()
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-5, atol=1e-6)


# ---- bad inputs -----------------------------------------------------------------------------

def _x(*shape):
    return tn.tensor(np.full(shape, 0.5, np.float32))


BAD = [
    ("nll target out of range", lambda: F.nll_loss(_x(2, 3), np.array([0, 3])), IndexError, "out of bounds"),
    ("nll negative target", lambda: F.nll_loss(_x(2, 3), np.array([0, -2])), IndexError, "out of bounds"),
    ("nll float target", lambda: F.nll_loss(_x(2, 3), np.array([0.0, 1.0])), ValueError, "integer class"),
    ("nll target shape", lambda: F.nll_loss(_x(2, 3), np.array([0, 1, 2])), ValueError, "does not match"),
    ("nll weight shape", lambda: F.nll_loss(_x(2, 3), np.array([0, 1]), weight=np.ones(2)), ValueError,
     "all 3 classes"),
    ("nll reduction bogus", lambda: F.nll_loss(_x(2, 3), np.array([0, 1]), reduction="bogus"), ValueError,
     "not a valid value for reduction"),
    ("nll scalar input", lambda: F.nll_loss(_x(), np.array(0)), ValueError, "got a scalar"),
    ("mse shape mismatch", lambda: F.mse_loss(_x(2, 3), _x(3, 2)), ValueError, "differs from input shape"),
    ("mse reduction bogus", lambda: F.mse_loss(_x(2), _x(2), reduction="bogus"), ValueError, "reduction"),
    ("l1 integer input", lambda: F.l1_loss(tn.tensor(np.ones(2, np.int64)), _x(2)), ValueError, "dtype"),
    ("smooth_l1 negative beta", lambda: F.smooth_l1_loss(_x(2), _x(2), beta=-1.0), ValueError, "beta"),
    ("bce input above 1", lambda: F.binary_cross_entropy(tn.tensor(np.array([1.5], np.float32)), _x(1)),
     ValueError, "between 0 and 1"),
    ("bce input nan", lambda: F.binary_cross_entropy(tn.tensor(np.array([np.nan], np.float32)), _x(1)),
     ValueError, "between 0 and 1"),
    ("bce weight shape", lambda: F.binary_cross_entropy(_x(2, 3), _x(2, 3), weight=np.ones(4)), ValueError,
     "does not broadcast"),
    ("bce_logits reduction", lambda: F.binary_cross_entropy_with_logits(_x(2), _x(2), reduction="avg"),
     ValueError, "reduction"),
    ("max dim out of range", lambda: _x(2, 3).max(2), IndexError, "out of range"),
    ("argmax dim out of range", lambda: _x(2, 3).argmax(dim=-3), IndexError, "out of range"),
    ("max of empty", lambda: tn.zeros(0, 3).max(0), IndexError, "empty"),
    ("item of many", lambda: _x(2).item(), RuntimeError, "2 elements"),
]


@pytest.mark.parametrize("call, exc, phrase", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, phrase):
    with pytest.raises(exc, match=phrase):
        call()
