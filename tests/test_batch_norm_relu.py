"""BN followed by ReLU as one node (``batch_norm(relu=True)``, the CNN's ``fuse_relu``): a naive
float64 loop oracle, finite differences, and equality with BN then ReLU as two nodes."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import tinynorm as tn
import tinynorm.functional as F
from tinynorm import nn
from tinynorm.models import ReLUInNorm, build_model
from tinynorm.testing import gradcheck

FAST = settings(max_examples=15, deadline=None)
DTYPES = [np.float32, np.float64]


def naive_bn_relu(x, w, b, dy, eps):
    """Training-mode BN then ReLU and its gradients, by loops over channels and elements."""
    N, C = x.shape[:2]
    x3 = x.reshape(N, C, -1).astype(np.float64)
    dy3 = dy.reshape(N, C, -1).astype(np.float64)
    y, dx = np.zeros_like(x3), np.zeros_like(x3)
    dw, db = np.zeros(C), np.zeros(C)
    m = x3.shape[0] * x3.shape[2]
    for c in range(C):
        vals = [x3[n, c, s] for n in range(N) for s in range(x3.shape[2])]
        mean = sum(vals) / m
        invstd = 1.0 / np.sqrt(sum((v - mean) ** 2 for v in vals) / m + eps)
        g = np.zeros((N, x3.shape[2]))
        for n in range(N):
            for s in range(x3.shape[2]):
                pre = (x3[n, c, s] - mean) * invstd * w[c] + b[c]
                y[n, c, s] = pre if pre > 0 else 0.0
                g[n, s] = dy3[n, c, s] if pre > 0 else 0.0
        xhat = (x3[:, c] - mean) * invstd
        db[c] = g.sum()
        dw[c] = (g * xhat).sum()
        dx[:, c] = w[c] * invstd * (g - db[c] / m - xhat * dw[c] / m)
    return y.reshape(x.shape), dx.reshape(x.shape), dw, db


@st.composite
def cases(draw):
    shape = (draw(st.integers(2, 4)), draw(st.integers(1, 3))) + tuple(
        draw(st.lists(st.integers(1, 4), min_size=0, max_size=2)))
    return shape, draw(st.integers(0, 2**31))


@FAST
@given(cases(), st.sampled_from(DTYPES))
def test_matches_loop_oracle(case, dtype):
    shape, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(shape[1]).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    tx, tw, tb = (tn.Tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.batch_norm(tx, None, None, tw, tb, training=True, relu=True)
    (y * tn.Tensor(dy)).sum().backward()
    want = naive_bn_relu(x, w.astype(np.float64), b.astype(np.float64), dy, 1e-5)
    t = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
    for got, ref in zip((y.data, tx.grad.data, tw.grad.data, tb.grad.data), want):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref, **t)


@FAST
@given(cases())
def test_gradcheck(case):
    shape, seed = case
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(shape), rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    pre = F.batch_norm(tn.Tensor(x), None, None, tn.Tensor(w), tn.Tensor(b), training=True).data
    assume(np.abs(pre).min() > 1e-3)  # finite differences must not straddle ReLU's kink
    gradcheck(lambda a, ww, bb: F.batch_norm(a, None, None, ww, bb, training=True, relu=True),
              [x, w, b])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
def test_equals_bn_then_relu_to_second_order(dtype, training):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 5, 5)).astype(dtype)
    w, b = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)
    rm, rv = rng.standard_normal(3).astype(dtype), rng.random(3).astype(dtype) + 0.5
    results = []
    for fused in (True, False):
        tx, tw, tb = (tn.Tensor(a, requires_grad=True) for a in (x, w, b))
        stats = (tn.Tensor(rm.copy()), tn.Tensor(rv.copy()))
        y = F.batch_norm(tx, *stats, tw, tb, training=training, relu=fused)
        y = y if fused else F.relu(y)
        gx, gw = tn.autograd.grad((y * y).sum(), [tx, tw], create_graph=True)
        (gx * gx).sum().backward()
        results.append([y.data, gx.data, gw.data, tx.grad.data, tw.grad.data, tb.grad.data,
                        stats[0].data, stats[1].data])
    for a, b_ in zip(*results):
        np.testing.assert_allclose(a, b_, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


def test_in_place_write_to_output_is_caught():
    x = tn.Tensor(np.random.default_rng(2).standard_normal((3, 2, 4)), requires_grad=True)
    y = F.batch_norm(x, None, None, training=True, relu=True)
    z = y * 1.0
    y.zero_()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_cnn_fuses_bn_relu_and_trains_as_unfused():
    rng = np.random.default_rng(3)
    x, labels = rng.standard_normal((6, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 6)
    nets = []
    for fused in (True, False):
        tn.manual_seed(0)
        net = build_model("cnn", (1, 8, 8))
        bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        assert [m.fuse_relu for m in bns] == [True, True]
        assert sum(isinstance(m, ReLUInNorm) for m in net.modules()) == 2
        if not fused:
            mods = list(net.features)
            for i, m in enumerate(mods):
                if isinstance(m, ReLUInNorm):
                    mods[i - 1].fuse_relu, mods[i] = False, nn.ReLU()
            net.features = nn.Sequential(*mods)
        loss = F.cross_entropy(net(tn.Tensor(x)), labels)
        loss.backward()
        nets.append((loss.item(), {k: p.grad.data for k, p in net.named_parameters()}))
    assert nets[0][0] == pytest.approx(nets[1][0], rel=1e-6)
    assert nets[0][1].keys() == nets[1][1].keys()
    for k, g in nets[0][1].items():
        np.testing.assert_allclose(g, nets[1][1][k], rtol=1e-5, atol=1e-6)
