"""BatchNorm through the op and module layers: a naive float64 loop oracle, gradients, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
import tinynorm.functional as F
from tinynorm import nn
from tinynorm.testing import gradcheck

from draws import affine_inputs

FAST = settings(max_examples=20, deadline=None)


# ---- the oracle: explicit loops from docs/norms.md#batchnorm ---------------------

def oracle_stats(x):
    """Per-channel mean, biased and unbiased variance by definition (loops over channels)."""
    x = np.asarray(x, dtype=np.float64)
    c = x.shape[1]
    means, biased, unbiased = np.zeros(c), np.zeros(c), np.zeros(c)
    for ch in range(c):
        vals = x[:, ch].ravel()
        m = len(vals)
        mu = sum(vals) / m
        ss = sum((v - mu) ** 2 for v in vals)
        means[ch], biased[ch] = mu, ss / m
        unbiased[ch] = ss / (m - 1) if m > 1 else np.nan
    return means, biased, unbiased


def oracle_forward(x, mean, var, weight, bias, eps):
    x = np.asarray(x, dtype=np.float64)
    y = np.empty_like(x)
    for ch in range(x.shape[1]):
        g = 1.0 if weight is None else weight[ch]
        b = 0.0 if bias is None else bias[ch]
        y[:, ch] = g * (x[:, ch] - mean[ch]) / np.sqrt(var[ch] + eps) + b
    return y


def oracle_backward(x, dy, weight, eps):
    """dx, dgamma, dbeta of training-mode BN, from the closed form in docs/norms.md#batchnorm."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    mean, var, _ = oracle_stats(x)
    dx, dg, db = np.empty_like(x), np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for ch in range(x.shape[1]):
        xc, dyc = x[:, ch], dy[:, ch]
        m = xc.size
        invstd = 1 / np.sqrt(var[ch] + eps)
        xhat = (xc - mean[ch]) * invstd
        g = 1.0 if weight is None else weight[ch]
        dx[:, ch] = g * invstd / m * (m * dyc - dyc.sum() - xhat * (dyc * xhat).sum())
        dg[ch], db[ch] = (dyc * xhat).sum(), dyc.sum()
    return dx, dg, db


def bn_shapes():
    return st.one_of(
        st.tuples(st.integers(2, 6), st.integers(1, 5)),
        st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 6)),
        st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
        st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
    ).filter(lambda s: np.prod(s) // s[1] > 1)


# ---- forward, backward, running stats against the oracle -------------------------

@FAST
@given(bn_shapes(), st.integers(0, 2**31), st.sampled_from([np.float32, np.float64]), st.booleans())
def test_training_forward_backward_match_oracle(shape, seed, dtype, affine):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    w = rng.uniform(0.5, 2, c).astype(dtype) if affine else None
    b = rng.standard_normal(c).astype(dtype) if affine else None
    xt = tn.tensor(x, requires_grad=True)
    wt = tn.tensor(w, requires_grad=True) if affine else None
    bt = tn.tensor(b, requires_grad=True) if affine else None
    y = F.batch_norm(xt, None, None, wt, bt, training=True, eps=1e-5)
    y.backward(dy)
    mean, var, _ = oracle_stats(x)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y.numpy(), oracle_forward(x, mean, var, w, b, 1e-5), **tol)
    assert y.dtype == dtype
    dx, dg, db = oracle_backward(x, dy, w, 1e-5)
    np.testing.assert_allclose(xt.grad.numpy(), dx, **tol)
    if affine:
        np.testing.assert_allclose(wt.grad.numpy(), dg, **tol)
        np.testing.assert_allclose(bt.grad.numpy(), db, **tol)


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_running_stats_follow_pytorch_rule(momentum):
    rng = np.random.default_rng(3)
    bn = nn.BatchNorm2d(3, momentum=momentum, dtype=np.float64)
    rm, rv = np.zeros(3), np.ones(3)
    batches = [rng.standard_normal((4, 3, 2, 5)) * (i + 1) + i for i in range(4)]
    for i, xb in enumerate(batches, 1):
        bn(tn.tensor(xb))
        mean, _, unbiased = oracle_stats(xb)
        f = 1.0 / i if momentum is None else momentum
        rm, rv = (1 - f) * rm + f * mean, (1 - f) * rv + f * unbiased
        np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-12)
        np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-12)
        assert int(bn.num_batches_tracked.numpy()) == i


def test_eval_uses_running_stats_and_constant_gradient():
    rng = np.random.default_rng(4)
    bn = nn.BatchNorm1d(5, dtype=np.float64)
    bn.running_mean.data[...] = rng.standard_normal(5)
    bn.running_var.data[...] = rng.uniform(0.5, 2, 5)
    bn.weight.data[...] = rng.uniform(0.5, 2, 5)
    bn.bias.data[...] = rng.standard_normal(5)
    bn.eval()
    x = rng.standard_normal((7, 5))
    y = bn(tn.tensor(x)).numpy()
    expect = oracle_forward(x, bn.running_mean.numpy(), bn.running_var.numpy(),
                            bn.weight.numpy(), bn.bias.numpy(), 1e-5)
    np.testing.assert_allclose(y, expect, rtol=1e-12)
    before = bn.running_mean.numpy().copy()
    bn(tn.tensor(x))
    np.testing.assert_array_equal(bn.running_mean.numpy(), before)
    gradcheck(lambda t: bn(t), [x])


def test_track_running_stats_false_uses_batch_stats_in_eval():
    rng = np.random.default_rng(5)
    bn = nn.BatchNorm1d(4, affine=False, track_running_stats=False, dtype=np.float64).eval()
    assert bn.running_mean is None and list(bn.state_dict()) == []
    x = rng.standard_normal((6, 4, 3)) + 2
    mean, var, _ = oracle_stats(x)
    np.testing.assert_allclose(bn(tn.tensor(x)).numpy(), oracle_forward(x, mean, var, None, None, 1e-5),
                               rtol=1e-12)


def test_float32_keeps_variance_of_offset_data():
    rng = np.random.default_rng(6)
    x = (1e4 + rng.standard_normal((256, 3, 8))).astype(np.float32)
    y = F.batch_norm(tn.tensor(x), None, None, training=True).numpy().astype(np.float64)
    assert np.allclose(y.reshape(256, 3, 8).var(axis=(0, 2)), 1.0, atol=2e-2)


def test_constant_channel_is_finite_and_nan_propagates():
    x = np.ones((4, 2, 3))
    y = F.batch_norm(tn.tensor(x), None, None, training=True).numpy()
    assert np.all(np.isfinite(y)) and np.allclose(y, 0)
    x[1, 0, 2] = np.nan
    y = F.batch_norm(tn.tensor(x), None, None, training=True).numpy()
    assert np.all(np.isnan(y[:, 0])) and np.all(np.isfinite(y[:, 1]))


# ---- gradients by finite differences ------------------------------------------

@FAST
@given(bn_shapes(), st.integers(0, 2**31), st.booleans())
def test_batch_norm_gradcheck_training(shape, seed, affine):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    c = shape[1]
    if affine:
        w, b = rng.uniform(0.5, 2, c), rng.standard_normal(c)
        gradcheck(lambda t, g, bb: F.batch_norm(t, None, None, g, bb, training=True), [x, w, b])
    else:
        gradcheck(lambda t: F.batch_norm(t, None, None, training=True), [x])


@FAST
@given(bn_shapes(), st.integers(0, 2**31))
def test_batch_norm_gradcheck_eval(shape, seed):
    c = shape[1]
    rng, x, w, b = affine_inputs(seed, shape, c)
    rm, rv = tn.tensor(rng.standard_normal(c)), tn.tensor(rng.uniform(0.5, 2, c))
    gradcheck(lambda t, g, bb: F.batch_norm(t, rm, rv, g, bb, training=False), [x, w, b])


# ---- bad input ------------------------------------------------------------------

def test_errors_name_the_problem():
    bn = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match="expected 4D input, got 3D"):
        bn(tn.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="got input with 5 channels"):
        bn(tn.zeros(2, 5, 4, 4))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(4)(tn.zeros(1, 4))
    with pytest.raises(ValueError, match="unsupported dtype int64"):
        F.batch_norm(tn.tensor(np.ones((3, 2), dtype=np.int64)), None, None, training=True)
    with pytest.raises(ValueError, match="unsupported dtype float16"):
        nn.BatchNorm1d(2)(tn.tensor(np.ones((3, 2), dtype=np.float16)))
    with pytest.raises(ValueError, match="weight has shape"):
        F.batch_norm(tn.zeros(3, 2), None, None, tn.ones(3), training=True)
    with pytest.raises(ValueError, match="rank 1"):
        F.batch_norm(tn.zeros(3), None, None, training=True)
    nn.BatchNorm1d(4).eval()(tn.zeros(1, 4))


def test_module_names_defaults_and_state_dict_keys():
    bn = nn.BatchNorm2d(8)
    assert (bn.eps, bn.momentum, bn.affine, bn.track_running_stats) == (1e-5, 0.1, True, True)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert "BatchNorm2d(8, eps=1e-05, momentum=0.1" in repr(bn)


# ---- PyTorch as an extra oracle ---------------------------------------------------

@settings(max_examples=10, deadline=None)
@given(bn_shapes(), st.integers(0, 2**31), st.sampled_from([0.1, None]))
def test_matches_torch_float32(shape, seed, momentum):
    _compare_with_torch(shape, seed, momentum)


@pytest.mark.parametrize("shape", [(512, 64), (16, 24, 50), (32, 16, 12, 12), (4, 8, 6, 10, 10)])
def test_matches_torch_float32_large_shapes(shape):
    _compare_with_torch(shape, 11, 0.1)


def _compare_with_torch(shape, seed, momentum):
    """Our float32 BN against torch's in float64: torch's own float32 rounding is not the
    oracle (at batch 2, dx is a difference of nearly equal terms, and torch's float32 dx can
    sit 2e-5 off the exact value where ours is within 1e-6)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32) * 2 + 0.5
    dy = rng.standard_normal(shape).astype(np.float32)
    c = shape[1]
    cls = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}[len(shape)]
    ours = getattr(nn, cls)(c, momentum=momentum)
    ref = getattr(torch.nn, cls)(c, momentum=momentum).double()
    w = rng.uniform(0.5, 2, c).astype(np.float32)
    ours.weight.data[...] = w
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(w.astype(np.float64)))
    for _ in range(2):
        xt = tn.tensor(x, requires_grad=True)
        xr = torch.from_numpy(x.astype(np.float64)).requires_grad_()
        y, yr = ours(xt), ref(xr)
        y.backward(dy)
        yr.backward(torch.from_numpy(dy.astype(np.float64)))
        np.testing.assert_allclose(y.numpy(), yr.detach().numpy(), atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(xt.grad.numpy(), xr.grad.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(ours.bias.grad.numpy(), ref.bias.grad.numpy(), atol=1e-5, rtol=1e-5)
    for key, value in ref.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), atol=1e-5, rtol=1e-5)


@FAST
@given(st.lists(st.integers(0, 6), min_size=1, max_size=4), st.integers(0, 2**31))
def test_chan_merge_of_shards_equals_stats_of_the_whole(sizes, seed):
    """The combine step for synchronized BN: merged shard stats (empty shards too) equal the batch's."""
    from tinynorm.ops.batch_norm import chan_merge, local_stats
    rng = np.random.default_rng(seed)
    shards = [rng.standard_normal((n, 3, 4)) * 5 + 100 for n in sizes]
    whole = np.concatenate(shards)
    parts = [local_stats(s) if len(s) else (np.zeros(3), np.zeros(3), np.zeros(3)) for s in shards]
    count, mean, m2 = chan_merge(*(np.stack(col) for col in zip(*parts)))
    assert np.all(count == whole.shape[0] * 4)
    if len(whole):
        ref_mean, ref_var, _ = oracle_stats(whole)
        np.testing.assert_allclose(mean, ref_mean, rtol=1e-12)
        np.testing.assert_allclose(m2 / count, ref_var, rtol=1e-9)


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 1), (2, 1, 40)])
def test_dx_keeps_the_float64_mean_when_it_cancels(shape):
    """Few values per channel and |mean| >> std: dx is a small difference of large terms, so a
    mean rounded to float32 before (x - mean) would cost percents of dx."""
    rng = np.random.default_rng(0)
    x = (-50 + 0.13 * rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)

    def dx_of(xv, dyv):
        t = tn.tensor(xv, requires_grad=True)
        F.batch_norm(t, None, None, training=True).backward(dyv)
        return t.grad.data.astype(np.float64)

    got, exact = dx_of(x, dy), dx_of(x.astype(np.float64), dy.astype(np.float64))
    invstd = 1 / np.sqrt(x.astype(np.float64).var(axis=(0, 2) if x.ndim == 3 else 0) + 1e-5)
    scale = np.abs(dy).max() * invstd.max()
    np.testing.assert_allclose(got, exact, rtol=0, atol=2e-6 * scale)
