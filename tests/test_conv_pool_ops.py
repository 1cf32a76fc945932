"""Conv2d and pooling through the tape: finite-difference gradients, torch parity, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
import tinynorm.functional as F
from tinynorm import nn
from tinynorm.testing import gradcheck

FAST = settings(max_examples=12, deadline=None)


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    h = draw(st.integers(dilation[0] * (kh - 1) + 1, 5))
    w = draw(st.integers(dilation[1] * (kw - 1) + 1, 5))
    n = draw(st.integers(1, 2))
    return dict(shape=(n, cin, h, w), wshape=(cout, cin // groups, kh, kw), stride=stride,
                padding=padding, dilation=dilation, groups=groups, bias=draw(st.booleans()),
                seed=draw(st.integers(0, 2**31)))


@FAST
@given(conv_cases())
def test_conv2d_gradcheck(case):
    rng = np.random.default_rng(case["seed"])
    x, w = rng.standard_normal(case["shape"]), rng.standard_normal(case["wshape"])
    kw = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}
    if case["bias"]:
        b = rng.standard_normal(case["wshape"][0])
        gradcheck(lambda a, ww, bb: F.conv2d(a, ww, bb, **kw), [x, w, b])
    else:
        gradcheck(lambda a, ww: F.conv2d(a, ww, None, **kw), [x, w])


@settings(max_examples=10, deadline=None)
@given(conv_cases())
def test_conv2d_matches_torch(case):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["shape"]).astype(np.float32)
    w = rng.standard_normal(case["wshape"]).astype(np.float32)
    b = rng.standard_normal(case["wshape"][0]).astype(np.float32)
    kw = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}
    xt, wt, bt = (tn.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, **kw)
    xr, wr, br = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
    yr = torch.nn.functional.conv2d(xr, wr, br, **kw)
    dy = rng.standard_normal(yr.shape).astype(np.float32)
    y.backward(dy)
    yr.backward(torch.from_numpy(dy))
    for ours, ref in ((y, yr), (xt.grad, xr.grad), (wt.grad, wr.grad), (bt.grad, br.grad)):
        np.testing.assert_allclose(ours.numpy(), ref.detach().numpy(), rtol=1e-4, atol=1e-4)


@st.composite
def pool_cases(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(k[0], 6)),
             draw(st.integers(k[1], 6)))
    return dict(shape=shape, k=k, s=s, p=p, ceil=draw(st.booleans()), seed=draw(st.integers(0, 2**31)))


@FAST
@given(pool_cases(), st.booleans())
def test_pool_gradchecks(case, include_pad):
    rng = np.random.default_rng(case["seed"])
    # distinct values keep every max unique, so the finite differences are exact
    x = rng.permutation(np.prod(case["shape"])).reshape(case["shape"]) * 0.1 + rng.uniform(0, 0.01, case["shape"])
    k, s, p, ceil = case["k"], case["s"], case["p"], case["ceil"]
    gradcheck(lambda a: F.max_pool2d(a, k, s, p, 1, ceil), [x], eps=1e-4)
    gradcheck(lambda a: F.avg_pool2d(a, k, s, p, ceil, include_pad), [x])
    out = (max(1, case["shape"][2] // 2), max(1, case["shape"][3] - 1))
    gradcheck(lambda a: F.adaptive_avg_pool2d(a, out), [x])


@settings(max_examples=10, deadline=None)
@given(pool_cases(), st.booleans())
def test_pools_match_torch(case, include_pad):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["shape"]).astype(np.float32)
    k, s, p, ceil = case["k"], case["s"], case["p"], case["ceil"]
    pairs = [
        (lambda a: F.max_pool2d(a, k, s, p, 1, ceil), lambda a: tf.max_pool2d(a, k, s, p, 1, ceil)),
        (lambda a: F.avg_pool2d(a, k, s, p, ceil, include_pad),
         lambda a: tf.avg_pool2d(a, k, s, p, ceil, include_pad)),
        (lambda a: F.adaptive_avg_pool2d(a, (2, 3)), lambda a: tf.adaptive_avg_pool2d(a, (2, 3))),
    ]
    for ours_fn, ref_fn in pairs:
        xt = tn.tensor(x, requires_grad=True)
        xr = torch.from_numpy(x.copy()).requires_grad_()
        y, yr = ours_fn(xt), ref_fn(xr)
        dy = rng.standard_normal(yr.shape).astype(np.float32)
        y.backward(dy)
        yr.backward(torch.from_numpy(dy))
        np.testing.assert_allclose(y.numpy(), yr.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(xt.grad.numpy(), xr.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_conv_and_pool_errors():
    with pytest.raises(ValueError, match="rank 2"):
        F.conv2d(tn.zeros(2, 3), tn.zeros(1, 2, 1, 1))
    with pytest.raises(ValueError, match="input has 3 channels but weight expects 2"):
        F.conv2d(tn.zeros(1, 3, 4, 4), tn.zeros(1, 2, 1, 1))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="too small"):
        F.conv2d(tn.zeros(1, 1, 2, 2), tn.zeros(1, 1, 3, 3))
    with pytest.raises(ValueError, match="unsupported dtype int64"):
        F.conv2d(tn.tensor(np.zeros((1, 1, 3, 3), dtype=np.int64)), tn.zeros(1, 1, 1, 1))
    with pytest.raises(ValueError, match="at most half"):
        F.max_pool2d(tn.zeros(1, 1, 4, 4), 2, padding=2)
    with pytest.raises(ValueError, match="rank 2"):
        nn.MaxPool2d(2)(tn.zeros(4, 4))


def test_conv_module_defaults_match_pytorch_init_bounds():
    conv = nn.Conv2d(4, 6, 3)
    bound = 1 / np.sqrt(4 * 9)
    assert np.all(np.abs(conv.weight.numpy()) <= bound) and np.all(np.abs(conv.bias.numpy()) <= bound)
    assert conv.weight.numpy().std() > bound / 3
    assert list(conv.state_dict()) == ["weight", "bias"]
    lin = nn.Linear(10, 3, bias=False)
    assert list(lin.state_dict()) == ["weight"] and lin.weight.shape == (3, 10)
