"""GroupNorm, LayerNorm, InstanceNorm through the op and module layers.

A naive float64 loop oracle written from docs/norms.md#groupnorm-layernorm-instancenorm,
finite-difference gradients for the input and every parameter, PyTorch as an
extra oracle when installed, and the errors.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
from tinynorm.nn.group_norm import (GroupNorm, InstanceNorm1d, InstanceNorm2d, InstanceNorm3d,
                                    LayerNorm)
from tinynorm.ops.group_norm import group_norm
from tinynorm.ops.instance_norm import instance_norm
from tinynorm.ops.layer_norm import layer_norm
from tinynorm.testing import gradcheck

from draws import affine_inputs

FAST = settings(max_examples=15, deadline=None)
EPS = 1e-5


# ---- the oracle: explicit loops from docs/norms.md#groupnorm-layernorm-instancenorm

def oracle_row(v, d, gam, bet, eps):
    """One normalized set: (mean, biased var, y, dx, dy*xhat, dy, dx_scale), gamma/beta per value.

    dx_scale = rstd * max |dy*gamma| bounds the terms of dx, whose float32 rounding
    error is relative to it (dx itself may be ~0, e.g. for a set of one value)."""
    m = len(v)
    mu = math.fsum(v) / m
    var = math.fsum((vi - mu) ** 2 for vi in v) / m
    rs = 1 / math.sqrt(var + eps)
    xhat = [(vi - mu) * rs for vi in v]
    y = [gam[i] * xhat[i] + bet[i] for i in range(m)]
    dxhat = [d[i] * gam[i] for i in range(m)]
    s1 = math.fsum(dxhat)
    s2 = math.fsum(dxhat[i] * xhat[i] for i in range(m))
    dx = [rs / m * (m * dxhat[i] - s1 - xhat[i] * s2) for i in range(m)]
    return (mu, var, y, dx, [d[i] * xhat[i] for i in range(m)], list(d),
            rs * max(abs(v) for v in dxhat))


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def oracle_group_norm(x, groups, w, b, dy, eps=EPS):
    """y, dx, dweight, dbias, dx_scale: stats per (sample, group) over (C/G, *spatial)."""
    x, dy = _f64(x), _f64(dy)
    n_, c = x.shape[:2]
    cg = c // groups
    s = int(np.prod(x.shape[2:]))
    w = np.ones(c) if w is None else _f64(w)
    b = np.zeros(c) if b is None else _f64(b)
    y, dx, scale = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    dw, db = np.zeros(c), np.zeros(c)
    for n in range(n_):
        for g in range(groups):
            chans = range(g * cg, (g + 1) * cg)
            v = [float(x[n, ch].ravel()[j]) for ch in chans for j in range(s)]
            d = [float(dy[n, ch].ravel()[j]) for ch in chans for j in range(s)]
            gam = [w[ch] for ch in chans for _ in range(s)]
            bet = [b[ch] for ch in chans for _ in range(s)]
            _, _, yv, dxv, dwv, dbv, scale[n, g * cg:(g + 1) * cg] = oracle_row(v, d, gam, bet, eps)
            for i, ch in enumerate(chans):
                y[n, ch] = np.reshape(yv[i * s:(i + 1) * s], x.shape[2:])
                dx[n, ch] = np.reshape(dxv[i * s:(i + 1) * s], x.shape[2:])
                dw[ch] += math.fsum(dwv[i * s:(i + 1) * s])
                db[ch] += math.fsum(dbv[i * s:(i + 1) * s])
    return y, dx, dw, db, scale


def oracle_layer_norm(x, normalized_shape, w, b, dy, eps=EPS):
    """y, dx, dweight, dbias, dx_scale: stats per sample over the trailing normalized_shape axes."""
    x, dy = _f64(x), _f64(dy)
    m = int(np.prod(normalized_shape))
    rows, drows = x.reshape(-1, m), dy.reshape(-1, m)
    w = np.ones(m) if w is None else _f64(w).ravel()
    b = np.zeros(m) if b is None else _f64(b).ravel()
    y, dx, scale = np.empty_like(rows), np.empty_like(rows), np.empty_like(rows)
    dw, db = np.zeros(m), np.zeros(m)
    for r in range(rows.shape[0]):
        _, _, yv, dxv, dwv, dbv, scale[r] = oracle_row(list(rows[r]), list(drows[r]), w, b, eps)
        y[r], dx[r] = yv, dxv
        for j in range(m):
            dw[j] += dwv[j]
            db[j] += dbv[j]
    return (y.reshape(x.shape), dx.reshape(x.shape), dw.reshape(normalized_shape),
            db.reshape(normalized_shape), scale.reshape(x.shape))


def oracle_instance_norm(x, w, b, dy, eps=EPS):
    """y, dx, dweight, dbias, dx_scale, per-instance means (N, C) and unbiased variances (N, C)."""
    x, dy = _f64(x), _f64(dy)
    n_, c = x.shape[:2]
    w = np.ones(c) if w is None else _f64(w)
    b = np.zeros(c) if b is None else _f64(b)
    y, dx, scale = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    dw, db = np.zeros(c), np.zeros(c)
    means, unbiased = np.zeros((n_, c)), np.zeros((n_, c))
    for n in range(n_):
        for ch in range(c):
            v, d = list(x[n, ch].ravel()), list(dy[n, ch].ravel())
            s = len(v)
            mu, var, yv, dxv, dwv, dbv, scale[n, ch] = oracle_row(v, d, [w[ch]] * s, [b[ch]] * s, eps)
            y[n, ch] = np.reshape(yv, x.shape[2:])
            dx[n, ch] = np.reshape(dxv, x.shape[2:])
            dw[ch] += math.fsum(dwv)
            db[ch] += math.fsum(dbv)
            means[n, ch], unbiased[n, ch] = mu, var * s / (s - 1)
    return y, dx, dw, db, scale, means, unbiased


# ---- strategies and helpers ------------------------------------------------------

@st.composite
def gn_cases(draw, max_side=3):
    groups = draw(st.integers(1, 3))
    c = groups * draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, max_side), min_size=0, max_size=2)))
    shape = (draw(st.integers(1, 3)), c) + spatial
    if shape[0] * (c // groups) * int(np.prod(spatial)) == 1:
        shape = (2,) + shape[1:]
    return shape, groups


@st.composite
def ln_cases(draw, max_side=4):
    shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=1, max_size=3)))
    k = draw(st.integers(1, len(shape)))
    return shape, shape[len(shape) - k:]


@st.composite
def in_cases(draw, max_side=3):
    spatial = tuple(draw(st.lists(st.integers(1, max_side), min_size=1, max_size=3)))
    if int(np.prod(spatial)) == 1:
        spatial = (2,) + spatial[1:]
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3))) + spatial


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


def leaf(a):
    return None if a is None else tn.tensor(a, requires_grad=True)


def run(fn, x, dy, *params):
    """fn(x, *params) forward and backward; returns y, x.grad and the parameters' grads."""
    xt = tn.tensor(x, requires_grad=True)
    pts = [leaf(p) for p in params]
    y = fn(xt, *pts)
    y.backward(dy)
    return [y.numpy(), xt.grad.numpy()] + [None if p is None else p.grad.numpy() for p in pts]


def draw_params(rng, shape, dtype, affine):
    if not affine:
        return None, None
    return (rng.uniform(0.5, 2, shape).astype(dtype), rng.standard_normal(shape).astype(dtype))


def assert_close_all(got, want, dtype):
    """got = [y, dx, dweight, dbias] against the oracle's [y, dx, dweight, dbias, dx_scale]."""
    for i, (g, w) in enumerate(zip(got, want[:4])):
        if g is None:
            continue
        assert g.dtype == dtype
        if i == 1 and dtype == np.float32:
            assert np.all(np.abs(g - w) <= 1e-4 * (1 + np.abs(w)) + 2e-6 * want[4])
        else:
            np.testing.assert_allclose(g, w, **tol(dtype))


# ---- forward and backward against the oracle -------------------------------------

@FAST
@given(gn_cases(), st.integers(0, 2**31), st.sampled_from([np.float32, np.float64]), st.booleans())
def test_group_norm_matches_oracle(case, seed, dtype, affine):
    shape, groups = case
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    w, b = draw_params(rng, shape[1], dtype, affine)
    got = run(lambda t, wt, bt: group_norm(t, groups, wt, bt), x, dy, w, b)
    assert_close_all(got, oracle_group_norm(x, groups, w, b, dy), dtype)


@FAST
@given(ln_cases(), st.integers(0, 2**31), st.sampled_from([np.float32, np.float64]),
       st.sampled_from(["none", "weight", "both"]))
def test_layer_norm_matches_oracle(case, seed, dtype, affine):
    shape, ns = case
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 - 2).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    w, b = draw_params(rng, ns, dtype, affine != "none")
    if affine == "weight":
        b = None
    got = run(lambda t, wt, bt: layer_norm(t, ns, wt, bt), x, dy, w, b)
    assert_close_all(got, oracle_layer_norm(x, ns, w, b, dy), dtype)


@FAST
@given(in_cases(), st.integers(0, 2**31), st.sampled_from([np.float32, np.float64]), st.booleans(),
       st.booleans())
def test_instance_norm_matches_oracle(shape, seed, dtype, affine, track):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + 5).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    w, b = draw_params(rng, c, dtype, affine)
    rm0, rv0 = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    rm, rv = (tn.tensor(rm0.copy()), tn.tensor(rv0.copy())) if track else (None, None)
    got = run(lambda t, wt, bt: instance_norm(t, rm, rv, wt, bt, momentum=0.3), x, dy, w, b)
    want = oracle_instance_norm(x, w, b, dy)
    means, unbiased = want[5:]
    assert_close_all(got, want, dtype)
    if track:
        np.testing.assert_allclose(rm.numpy(), 0.7 * rm0 + 0.3 * means.mean(axis=0), rtol=1e-10)
        np.testing.assert_allclose(rv.numpy(), 0.7 * rv0 + 0.3 * unbiased.mean(axis=0),
                                   rtol=1e-6 if dtype == np.float32 else 1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_shapes_take_parallel_kernels_and_match_oracle(dtype):
    """Inputs above the kernels' parallel threshold (rows and column-piece traversals)."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((2, 4, 64, 80)) + 3).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    w, b = draw_params(rng, 4, dtype, True)
    got = run(lambda t, wt, bt: group_norm(t, 2, wt, bt), x, dy, w, b)
    assert_close_all(got, oracle_group_norm(x, 2, w, b, dy), dtype)
    x2 = x.reshape(2, -1)
    w2, b2 = draw_params(rng, x2.shape[1:], dtype, True)
    got = run(lambda t, wt, bt: layer_norm(t, x2.shape[1], wt, bt), x2, dy.reshape(2, -1), w2, b2)
    assert_close_all(got, oracle_layer_norm(x2, x2.shape[1:], w2, b2, dy.reshape(2, -1)), dtype)


def test_eval_instance_norm_uses_running_stats_and_constant_gradient():
    rng = np.random.default_rng(4)
    m = InstanceNorm1d(3, affine=True, track_running_stats=True, dtype=np.float64)
    m.running_mean.data[...] = rng.standard_normal(3)
    m.running_var.data[...] = rng.uniform(0.5, 2, 3)
    m.weight.data[...] = rng.uniform(0.5, 2, 3)
    m.bias.data[...] = rng.standard_normal(3)
    m.eval()
    x = rng.standard_normal((4, 3, 5))
    y = m(tn.tensor(x)).numpy()
    rm, rv = m.running_mean.numpy(), m.running_var.numpy()
    expect = ((x - rm[:, None]) / np.sqrt(rv[:, None] + EPS) * m.weight.numpy()[:, None]
              + m.bias.numpy()[:, None])
    np.testing.assert_allclose(y, expect, rtol=1e-12)
    before = rm.copy()
    m(tn.tensor(x))
    np.testing.assert_array_equal(m.running_mean.numpy(), before)
    gradcheck(lambda t, g, bb: instance_norm(t, m.running_mean, m.running_var, g, bb,
                                             use_input_stats=False), [x, m.weight, m.bias])


def test_instance_norm_without_tracking_uses_batch_stats_in_eval():
    rng = np.random.default_rng(5)
    m = InstanceNorm2d(2).eval()
    assert m.running_mean is None and list(m.state_dict()) == []
    x = rng.standard_normal((3, 2, 4, 5)) + 2
    y, *_ = oracle_instance_norm(x, None, None, np.zeros_like(x))
    np.testing.assert_allclose(m(tn.tensor(x)).numpy(), y, rtol=1e-10, atol=1e-12)


def test_float32_keeps_variance_of_offset_data():
    rng = np.random.default_rng(6)
    x = (1e4 + rng.standard_normal((4, 8, 16, 16))).astype(np.float32)
    for y, rows in ((group_norm(tn.tensor(x), 2), 8), (layer_norm(tn.tensor(x), (8, 16, 16)), 4),
                    (instance_norm(tn.tensor(x)), 32)):
        v = y.numpy().astype(np.float64).reshape(rows, -1).var(axis=1)
        assert np.allclose(v, 1.0, atol=2e-3)


def test_constant_input_is_finite_and_nan_propagates():
    x = np.ones((2, 4, 3))
    for y in (group_norm(tn.tensor(x), 2), layer_norm(tn.tensor(x), 3), instance_norm(tn.tensor(x))):
        assert np.all(y.numpy() == 0)
    x = np.random.default_rng(8).standard_normal((2, 4, 3))
    x[1, 0, 2] = np.nan
    y = group_norm(tn.tensor(x), 2).numpy()
    assert np.all(np.isnan(y[1, :2])) and np.isfinite(y).sum() == y.size - 6
    y = layer_norm(tn.tensor(x), 3).numpy()
    assert np.all(np.isnan(y[1, 0])) and np.isfinite(y).sum() == y.size - 3


def test_non_contiguous_input_and_gradient():
    rng = np.random.default_rng(9)
    base = rng.standard_normal((5, 4, 6))
    x = base.transpose(2, 1, 0)
    dy = rng.standard_normal((5, 4, 6)).transpose(2, 1, 0)
    got = run(lambda t: group_norm(t, 2), x, dy)
    y, dx = oracle_group_norm(x, 2, None, None, dy)[:2]
    np.testing.assert_allclose(got[0], y, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[1], dx, rtol=1e-10, atol=1e-12)


# ---- gradients by finite differences ------------------------------------------

@FAST
@given(gn_cases(), st.integers(0, 2**31))
def test_group_norm_gradcheck(case, seed):
    shape, groups = case
    _, x, w, b = affine_inputs(seed, shape, shape[1])
    gradcheck(lambda t, g, bb: group_norm(t, groups, g, bb), [x, w, b])


@FAST
@given(ln_cases(max_side=3), st.integers(0, 2**31))
def test_layer_norm_gradcheck(case, seed):
    shape, ns = case
    _, x, w, b = affine_inputs(seed, shape, ns)
    gradcheck(lambda t, g, bb: layer_norm(t, ns, g, bb), [x, w, b])


@FAST
@given(in_cases(), st.integers(0, 2**31))
def test_instance_norm_gradcheck(shape, seed):
    _, x, w, b = affine_inputs(seed, shape, shape[1])
    gradcheck(lambda t, g, bb: instance_norm(t, weight=g, bias=bb), [x, w, b])


# ---- bad input ------------------------------------------------------------------

def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"num_channels \(6\) must be divisible by num_groups \(4\)"):
        GroupNorm(4, 6)
    with pytest.raises(ValueError, match="6 is not divisible by num_groups 4"):
        group_norm(tn.zeros(2, 6, 3), 4)
    with pytest.raises(ValueError, match="got rank 1"):
        group_norm(tn.zeros(6), 3)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 6, ...\)"):
        GroupNorm(3, 6)(tn.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        group_norm(tn.zeros(1, 2), 2)
    with pytest.raises(ValueError, match="weight has shape"):
        group_norm(tn.zeros(2, 6, 3), 3, tn.ones(3))
    with pytest.raises(ValueError, match="unsupported dtype int64"):
        group_norm(tn.tensor(np.ones((2, 4, 3), dtype=np.int64)), 2)
    with pytest.raises(ValueError, match="unsupported dtype float16"):
        LayerNorm(3)(tn.tensor(np.ones((2, 3), dtype=np.float16)))
    with pytest.raises(ValueError, match=r"normalized_shape=\[4\]"):
        LayerNorm(4)(tn.zeros(2, 3))
    with pytest.raises(ValueError, match="bias has shape"):
        layer_norm(tn.zeros(2, 3), 3, tn.ones(3), tn.ones(2))
    with pytest.raises(ValueError, match="expected 4D input"):
        InstanceNorm2d(3)(tn.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="expected 3D input"):
        InstanceNorm1d(3)(tn.zeros(3, 4))
    with pytest.raises(ValueError, match="got input with 5 channels"):
        InstanceNorm3d(3, affine=True)(tn.zeros(1, 5, 2, 2, 2))
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        instance_norm(tn.zeros(2, 3, 1))
    with pytest.raises(ValueError, match="running_mean and running_var must be given"):
        instance_norm(tn.zeros(2, 3, 4), use_input_stats=False)
    with pytest.raises(ValueError, match="running_var has shape"):
        instance_norm(tn.zeros(2, 3, 4), tn.zeros(3), tn.ones(2))
    with pytest.raises(ValueError, match="unsupported dtype int32"):
        instance_norm(tn.tensor(np.ones((2, 3, 4), dtype=np.int32)))
    with pytest.warns(UserWarning, match="does not match num_features"):
        InstanceNorm1d(3)(tn.zeros(2, 5, 4))


def test_module_names_defaults_and_state_dict_keys():
    gn = GroupNorm(2, 4)
    assert (gn.eps, gn.affine) == (1e-5, True)
    assert list(gn.state_dict()) == ["weight", "bias"]
    assert np.all(gn.weight.numpy() == 1) and np.all(gn.bias.numpy() == 0)
    assert repr(gn) == "GroupNorm(2, 4, eps=1e-05, affine=True)"
    assert list(GroupNorm(2, 4, affine=False).state_dict()) == []
    ln = LayerNorm((3, 4))
    assert ln.normalized_shape == (3, 4) and ln.weight.shape == (3, 4)
    assert list(ln.state_dict()) == ["weight", "bias"]
    assert list(LayerNorm(3, bias=False).state_dict()) == ["weight"]
    assert list(LayerNorm(3, elementwise_affine=False).state_dict()) == []
    assert LayerNorm(5).normalized_shape == (5,)
    inn = InstanceNorm2d(3)
    assert (inn.eps, inn.momentum, inn.affine, inn.track_running_stats) == (1e-5, 0.1, False, False)
    assert list(inn.state_dict()) == [] and list(inn.parameters()) == []
    tracked = InstanceNorm3d(3, affine=True, track_running_stats=True)
    assert list(tracked.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                          "num_batches_tracked"]
    assert "InstanceNorm3d(3, eps=1e-05, momentum=0.1, affine=True" in repr(tracked)


# ---- PyTorch as an extra oracle ---------------------------------------------------

# PyTorch computes y = x*a + (b - mean*a) in float32, which cancels when the
# variance is tiny (a = gamma*rstd large): sets of 1 value give |y - beta| ~ 1e-5.
# Parity is checked on normalized sets of at least MIN_SET values.
MIN_SET = 4


def _torch_pair(kind, shape, rng, momentum=0.1):
    torch = pytest.importorskip("torch")
    size = int(np.prod(shape[2:]))
    if kind == "gn":
        groups = int(rng.choice([g for g in range(1, shape[1] + 1)
                                 if shape[1] % g == 0 and shape[1] // g * size >= MIN_SET]))
        ours, ref = GroupNorm(groups, shape[1]), torch.nn.GroupNorm(groups, shape[1])
    elif kind == "ln":
        k = rng.choice([k for k in range(1, len(shape) + 1) if np.prod(shape[-k:]) >= MIN_SET])
        ns = shape[len(shape) - k:]
        ours, ref = LayerNorm(ns), torch.nn.LayerNorm(ns)
    else:
        cls = {3: "InstanceNorm1d", 4: "InstanceNorm2d", 5: "InstanceNorm3d"}[len(shape)]
        kw = dict(affine=True, track_running_stats=True, momentum=momentum)
        ours = {"InstanceNorm1d": InstanceNorm1d, "InstanceNorm2d": InstanceNorm2d,
                "InstanceNorm3d": InstanceNorm3d}[cls](shape[1], **kw)
        ref = getattr(torch.nn, cls)(shape[1], **kw)
    for name, p in ours.named_parameters():
        p.data[...] = rng.uniform(0.5, 2, p.shape) if name == "weight" else rng.standard_normal(p.shape)
        with torch.no_grad():
            getattr(ref, name).copy_(torch.from_numpy(p.data.copy()))
    return torch, ours, ref


def _compare_with_torch(kind, shape, seed, momentum=0.1):
    rng = np.random.default_rng(seed)
    torch, ours, ref = _torch_pair(kind, shape, rng, momentum)
    close = dict(atol=1e-5, rtol=1e-5)
    for step in range(3):
        if step == 2:
            ours.eval()
            ref.eval()
        x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        xt = tn.tensor(x, requires_grad=True)
        xr = torch.from_numpy(x.copy()).requires_grad_()
        y, yr = ours(xt), ref(xr)
        y.backward(dy)
        yr.backward(torch.from_numpy(dy))
        np.testing.assert_allclose(y.numpy(), yr.detach().numpy(), **close)
        np.testing.assert_allclose(xt.grad.numpy(), xr.grad.numpy(), **close)
    for name, p in ours.named_parameters():
        want = getattr(ref, name).grad.numpy()
        # sums over N*spatial terms: float32 rounding grows with the largest sums
        np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-5,
                                   atol=1e-5 * max(1.0, np.abs(want).max()))
    for key, value in ref.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), **close)


def _shapes(min_dims, max_dims):
    return st.lists(st.integers(1, 5), min_size=min_dims, max_size=max_dims).map(tuple)


@settings(max_examples=10, deadline=None)
@given(_shapes(2, 4).filter(lambda s: np.prod(s[1:]) >= MIN_SET), st.integers(0, 2**31))
def test_group_norm_matches_torch_float32(shape, seed):
    _compare_with_torch("gn", shape, seed)


@settings(max_examples=10, deadline=None)
@given(_shapes(1, 4).filter(lambda s: np.prod(s) >= MIN_SET), st.integers(0, 2**31))
def test_layer_norm_matches_torch_float32(shape, seed):
    _compare_with_torch("ln", shape, seed)


@settings(max_examples=10, deadline=None)
@given(_shapes(3, 5).filter(lambda s: np.prod(s[2:]) >= MIN_SET), st.integers(0, 2**31),
       st.sampled_from([0.1, 0.5, None]))
def test_instance_norm_matches_torch_float32(shape, seed, momentum):
    _compare_with_torch("in", shape, seed, momentum)


@pytest.mark.parametrize("kind, shape", [("gn", (8, 32, 12, 12)), ("ln", (64, 768)),
                                         ("ln", (2, 3, 100, 100)), ("in", (4, 8, 40, 40)),
                                         ("in", (2, 3, 9000))])
def test_matches_torch_float32_large_shapes(kind, shape):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _compare_with_torch(kind, shape, 11)
