"""Batch Renormalization (Ioffe 2017, Algorithm 1): loop oracle from docs/norms.md#batch-renormalization,
gradients, BN limit, schedule, errors."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
import tinynorm.functional as F
from tinynorm import nn
from tinynorm.nn.batch_renorm import BatchRenorm1d, BatchRenorm2d, renorm_schedule
from tinynorm.ops.batch_renorm import batch_renorm, renormalize
from tinynorm.testing import gradcheck

from draws import affine_inputs

FAST = settings(max_examples=15, deadline=None)
EPS = 1e-5


# ---- the oracle: explicit loops from docs/norms.md#batch-renormalization ----------

def _channel(x, c):
    x = np.asarray(x, dtype=np.float64)
    return [float(v) for v in x[:, c].ravel()]


def oracle_train(x, dy, mu, sigma, gamma, beta, rmax, dmax, momentum, eps=EPS):
    """y, dx, dgamma, dbeta, new mu, new sigma, r, d of one training step, channel by channel."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    C = x.shape[1]
    y, dx = np.zeros_like(x), np.zeros_like(x)
    dg, db, mu2, sig2, rs, ds = (np.zeros(C) for _ in range(6))
    for c in range(C):
        vals = _channel(x, c)
        m = len(vals)
        mean_b = math.fsum(vals) / m
        sigma_b = math.sqrt(math.fsum((v - mean_b) ** 2 for v in vals) / m + eps)
        r = min(max(sigma_b / sigma[c], 1 / rmax), rmax)
        d = min(max((mean_b - mu[c]) / sigma[c], -dmax), dmax)
        xc = x[:, c]
        xhat_b = (xc - mean_b) / sigma_b
        g = 1.0 if gamma is None else gamma[c]
        b = 0.0 if beta is None else beta[c]
        y[:, c] = g * (xhat_b * r + d) + b
        dyc = dy[:, c]
        dx[:, c] = g * r / sigma_b / m * (m * dyc - dyc.sum() - xhat_b * (dyc * xhat_b).sum())
        dg[c] = (dyc * (xhat_b * r + d)).sum()
        db[c] = dyc.sum()
        mu2[c] = mu[c] + momentum * (mean_b - mu[c])
        sig2[c] = sigma[c] + momentum * (sigma_b - sigma[c])
        rs[c], ds[c] = r, d
    return y, dx, dg, db, mu2, sig2, rs, ds


def oracle_eval(x, mu, sigma, gamma, beta):
    x = np.asarray(x, np.float64)
    y = np.zeros_like(x)
    for c in range(x.shape[1]):
        g = 1.0 if gamma is None else gamma[c]
        b = 0.0 if beta is None else beta[c]
        y[:, c] = g * (x[:, c] - mu[c]) / sigma[c] + b
    return y


def br_shapes():
    return st.one_of(
        st.tuples(st.integers(2, 6), st.integers(1, 4)),
        st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 5)),
        st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
    ).filter(lambda s: np.prod(s) // s[1] > 1)


def _running(rng, c, dtype, spread=1.0):
    mu = (rng.standard_normal(c) * spread).astype(dtype)
    sigma = rng.uniform(0.3, 3.0, c).astype(dtype)
    return mu, sigma


# ---- forward, backward, moving statistics against the oracle --------------------------

@FAST
@given(br_shapes(), st.integers(0, 2**31), st.sampled_from([np.float32, np.float64]),
       st.booleans(), st.sampled_from([(1.0, 0.0), (1.5, 0.5), (3.0, 5.0)]))
def test_training_matches_oracle(shape, seed, dtype, affine, limits):
    rmax, dmax = limits
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    w = rng.uniform(0.5, 2, c).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    mu, sigma = _running(rng, c, dtype)
    ref = oracle_train(x, dy, mu, sigma, w, b, rmax, dmax, 0.01)
    rm, rs = tn.tensor(mu.copy()), tn.tensor(sigma.copy())
    xt = tn.tensor(x, requires_grad=True)
    wt = tn.tensor(w, requires_grad=True) if affine else None
    bt = tn.tensor(b, requires_grad=True) if affine else None
    y = batch_renorm(xt, rm, rs, wt, bt, training=True, rmax=rmax, dmax=dmax)
    y.backward(dy)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    assert y.dtype == dtype and xt.grad.dtype == dtype
    np.testing.assert_allclose(y.numpy(), ref[0], **tol)
    np.testing.assert_allclose(xt.grad.numpy(), ref[1], **tol)
    if affine:
        np.testing.assert_allclose(wt.grad.numpy(), ref[2], **tol)
        np.testing.assert_allclose(bt.grad.numpy(), ref[3], **tol)
    np.testing.assert_allclose(rm.numpy(), ref[4], **tol)
    np.testing.assert_allclose(rs.numpy(), ref[5], **tol)


def test_oracle_case_really_clips_and_really_corrects():
    """The limits matter: the oracle's r and d hit the clip for some channels and not others."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 4, 3)) * np.array([1, 5, 0.2, 1])[None, :, None] + 3
    mu, sigma = np.zeros(4), np.ones(4)
    *_, r, d = oracle_train(x, np.ones_like(x), mu, sigma, None, None, 2.0, 2.5, 0.01)
    assert np.any(r == 2.0) and np.any(r == 0.5) and np.any((r > 0.5) & (r < 2.0))
    assert np.any(d == 2.5) and np.any((d > -2.5) & (d < 2.5))
    y = batch_renorm(tn.tensor(x), tn.tensor(mu), tn.tensor(sigma), training=True, rmax=2.0,
                     dmax=2.5).numpy()
    np.testing.assert_allclose(y, oracle_train(x, x, mu, sigma, None, None, 2.0, 2.5, 0.01)[0],
                               rtol=1e-12)
    bn = F.batch_norm(tn.tensor(x), None, None, training=True).numpy()
    assert np.abs(y - bn).max() > 1.0


def test_eval_uses_moving_mean_and_std():
    rng = np.random.default_rng(2)
    m = BatchRenorm2d(3, dtype=np.float64)
    m.running_mean.data[...] = rng.standard_normal(3)
    m.running_std.data[...] = rng.uniform(0.5, 2, 3)
    m.weight.data[...] = rng.uniform(0.5, 2, 3)
    m.bias.data[...] = rng.standard_normal(3)
    m.eval()
    x = rng.standard_normal((2, 3, 4, 4))
    y = m(tn.tensor(x)).numpy()
    np.testing.assert_allclose(y, oracle_eval(x, m.running_mean.numpy(), m.running_std.numpy(),
                                              m.weight.numpy(), m.bias.numpy()), rtol=1e-12)
    assert int(m.num_batches_tracked.numpy()) == 0
    before = m.running_std.numpy().copy()
    m(tn.tensor(x[:1]))
    np.testing.assert_array_equal(m.running_std.numpy(), before)
    gradcheck(lambda t, g, b: batch_renorm(t, m.running_mean, m.running_std, g, b), [x, m.weight, m.bias])


def test_float32_keeps_variance_of_offset_data():
    rng = np.random.default_rng(3)
    x = (1e4 + rng.standard_normal((256, 3, 8))).astype(np.float32)
    m = BatchRenorm1d(3)
    m.running_mean.data[...] = 1e4
    y = m(tn.tensor(x)).numpy().astype(np.float64)
    assert np.allclose(y.var(axis=(0, 2)), 1.0, atol=2e-2)
    np.testing.assert_allclose(m.running_mean.numpy(), 1e4, rtol=1e-6)


# ---- gradients by finite differences ----------------------------------------------

@FAST
@given(br_shapes(), st.integers(0, 2**31))
def test_gradcheck_with_r_d_inside_the_clip(shape, seed):
    """r, d strictly between their limits are constants of the step (fixed here), as in the paper."""
    c = shape[1]
    rng, x, w, b = affine_inputs(seed, shape, c)
    r, d = rng.uniform(0.6, 1.6, c), rng.uniform(-0.8, 0.8, c)
    gradcheck(lambda t, g, bb: renormalize(t, r, d, g, bb), [x, w, b])


@FAST
@given(br_shapes(), st.integers(0, 2**31))
def test_gradcheck_at_clip(shape, seed):
    """Moving stats far from the batch's: r = rmax or 1/rmax and d = +-dmax, locally constant in x."""
    c = shape[1]
    rng, x, w, b = affine_inputs(seed, shape, c)
    sign = rng.choice([-1.0, 1.0], c)
    mu = -sign * 1e4
    sigma = np.where(rng.random(c) < 0.5, 1e-3, 1e3)

    def fn(t, g, bb):
        return batch_renorm(t, tn.tensor(mu.copy()), tn.tensor(sigma.copy()), g, bb, training=True,
                            rmax=1.5, dmax=0.7)

    gradcheck(fn, [x, w, b])


@FAST
@given(br_shapes(), st.integers(0, 2**31))
def test_gradcheck_bn_limit_through_full_op(shape, seed):
    c = shape[1]
    rng, x, w, b = affine_inputs(seed, shape, c)
    mu, sigma = _running(rng, c, np.float64)
    gradcheck(lambda t, g, bb: batch_renorm(t, tn.tensor(mu), tn.tensor(sigma.copy()), g, bb,
                                            training=True), [x, w, b])


# ---- rmax = 1, dmax = 0 is BatchNorm ---------------------------------------------

@FAST
@given(br_shapes(), st.integers(0, 2**31), st.sampled_from([np.float32, np.float64]), st.booleans())
def test_rmax1_dmax0_is_exactly_batch_norm(shape, seed, dtype, affine):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 - 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    w = rng.uniform(-2, 2, c).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    mu, sigma = _running(rng, c, dtype, spread=5.0)
    outs = []
    for renorm in (True, False):
        xt = tn.tensor(x, requires_grad=True)
        wt = tn.tensor(w, requires_grad=True) if affine else None
        bt = tn.tensor(b, requires_grad=True) if affine else None
        if renorm:
            rm = tn.tensor(mu.copy())
            y = batch_renorm(xt, rm, tn.tensor(sigma.copy()), wt, bt, training=True,
                             momentum=0.1, rmax=1.0, dmax=0.0)
        else:
            rm = tn.tensor(mu.copy())
            y = F.batch_norm(xt, rm, tn.tensor(sigma.copy()), wt, bt, training=True, momentum=0.1)
        y.backward(dy)
        outs.append([y.numpy(), xt.grad.numpy(), rm.numpy()]
                    + ([wt.grad.numpy(), bt.grad.numpy()] if affine else []))
    ours, ref = outs
    for i, (a, e) in enumerate(zip(ours, ref)):
        if i == 2:
            np.testing.assert_allclose(a, e, rtol=1e-6 if dtype == np.float32 else 1e-14,
                                       atol=1e-6 if dtype == np.float32 else 1e-14)
        else:
            np.testing.assert_array_equal(a, e)


def test_module_with_default_schedule_equals_batch_norm_module_early_on():
    rng = np.random.default_rng(4)
    br, bn = BatchRenorm2d(3, momentum=0.1, dtype=np.float64), nn.BatchNorm2d(3, dtype=np.float64)
    for step in range(3):
        x = rng.standard_normal((4, 3, 2, 2)) * (step + 1) + step
        dy = rng.standard_normal(x.shape)
        ys = []
        for m in (br, bn):
            m.zero_grad()
            xt = tn.tensor(x, requires_grad=True)
            y = m(xt)
            y.backward(dy)
            ys.append((y.numpy(), xt.grad.numpy(), m.weight.grad.numpy(), m.running_mean.numpy()))
        for a, e in zip(*ys):
            np.testing.assert_allclose(a, e, rtol=1e-13, atol=1e-13)
    assert int(br.num_batches_tracked.numpy()) == 3


# ---- the schedule ------------------------------------------------------------------

def test_paper_schedule_at_key_steps():
    assert renorm_schedule(0) == (1.0, 0.0)
    assert renorm_schedule(4999) == (1.0, 0.0)
    assert renorm_schedule(5000) == (1.0, 0.0)
    rmax, dmax = renorm_schedule(15000)
    assert math.isclose(rmax, 1 + 2 * 10000 / 35000) and math.isclose(dmax, 2.5)
    rmax, dmax = renorm_schedule(25000)
    assert math.isclose(rmax, 1 + 2 * 20000 / 35000) and dmax == 5.0
    assert renorm_schedule(40000) == (3.0, 5.0)
    assert renorm_schedule(10**6) == (3.0, 5.0)
    assert renorm_schedule(10, warmup_steps=0, rmax_steps=20, dmax_steps=0, rmax=2, dmax=1) == (1.5, 1.0)


def test_module_schedule_forms_drive_the_forward():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 2)) * 4 + 3
    assert BatchRenorm1d(2).renorm_limits() == (1.0, 0.0)
    assert BatchRenorm1d(2).renorm_limits(40000) == (3.0, 5.0)
    assert BatchRenorm1d(2, schedule=(0, 10, 20), rmax=2, dmax=4).renorm_limits(5) == (1.5, 1.0)
    assert BatchRenorm1d(2, schedule={"warmup_steps": 2}).renorm_limits(2) == (1.0, 0.0)
    steps = []
    m = BatchRenorm1d(2, schedule=lambda s: (steps.append(s), (2.0, 0.5))[1], dtype=np.float64)
    m(tn.tensor(x))
    m(tn.tensor(x))
    assert steps == [0, 1]
    fixed = BatchRenorm1d(2, schedule=(0, 0, 0), rmax=2.0, dmax=0.5, dtype=np.float64)
    y = fixed(tn.tensor(x)).numpy()
    expect = oracle_train(x, x, np.zeros(2), np.ones(2), np.ones(2), np.zeros(2), 2.0, 0.5, 0.01)[0]
    np.testing.assert_allclose(y, expect, rtol=1e-12)
    assert np.abs(y - F.batch_norm(tn.tensor(x), None, None, training=True).numpy()).max() > 0.1


def test_module_names_defaults_and_state_dict_keys():
    m = BatchRenorm2d(4)
    assert (m.eps, m.momentum, m.affine, m.rmax, m.dmax) == (1e-5, 0.01, True, 3.0, 5.0)
    assert list(m.state_dict()) == ["weight", "bias", "running_mean", "running_std",
                                    "num_batches_tracked"]
    np.testing.assert_array_equal(m.running_std.numpy(), np.ones(4))
    assert "BatchRenorm2d(4, eps=1e-05, momentum=0.01" in repr(m)
    assert list(BatchRenorm1d(2, affine=False).state_dict()) == ["running_mean", "running_std",
                                                                  "num_batches_tracked"]


# ---- bad input ----------------------------------------------------------------------

def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        BatchRenorm1d(3)(tn.zeros(1, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        BatchRenorm2d(3)(tn.zeros(1, 3, 1, 1))
    BatchRenorm1d(3).eval()(tn.zeros(1, 3))
    with pytest.raises(ValueError, match="expected 4D input, got 3D"):
        BatchRenorm2d(3)(tn.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="got input with 5 channels"):
        BatchRenorm1d(3)(tn.zeros(2, 5))
    with pytest.raises(ValueError, match="unsupported dtype int64"):
        batch_renorm(tn.tensor(np.ones((3, 2), np.int64)), tn.zeros(2), tn.ones(2), training=True)
    with pytest.raises(ValueError, match="unsupported dtype float16"):
        BatchRenorm1d(2)(tn.tensor(np.ones((3, 2), np.float16)))
    with pytest.raises(ValueError, match="running_std has shape"):
        batch_renorm(tn.zeros(3, 2), tn.zeros(2), tn.ones(3), training=True)
    with pytest.raises(ValueError, match="needs running_mean and running_std"):
        batch_renorm(tn.zeros(3, 2), None, None, training=True)
    with pytest.raises(ValueError, match="rank 1"):
        batch_renorm(tn.zeros(3), tn.zeros(3), tn.ones(3), training=True)
    with pytest.raises(ValueError, match="rmax must be >= 1"):
        batch_renorm(tn.zeros(3, 2), tn.zeros(2), tn.ones(2), training=True, rmax=0.5)
    with pytest.raises(ValueError, match="dmax must be >= 0"):
        batch_renorm(tn.zeros(3, 2), tn.zeros(2), tn.ones(2), training=True, dmax=-1)
    with pytest.raises(ValueError, match="rmax must be >= 1"):
        BatchRenorm1d(2, schedule=lambda s: (0.5, 0.0))(tn.zeros(3, 2))
    with pytest.raises(ValueError, match="schedule must be None, a callable"):
        BatchRenorm1d(2, schedule=(1, 2))
    with pytest.raises(ValueError, match="unknown keys"):
        BatchRenorm1d(2, schedule={"warmup": 3})
    with pytest.raises(ValueError, match="need rmax >= 1"):
        BatchRenorm1d(2, rmax=0.9)
    with pytest.raises(ValueError, match="momentum must lie in"):
        BatchRenorm1d(2, momentum=1.5)
    with pytest.raises(ValueError, match="step must be >= 0"):
        renorm_schedule(-1)
    with pytest.raises(ValueError, match="num_features must be a positive"):
        BatchRenorm1d(0)
