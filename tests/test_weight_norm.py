"""Weight Normalization: fused op against a loop oracle, gradients, module helpers, torch parity.

The oracle is written from docs/norms.md#weight-normalization (w = g * v/||v||, norm over
every axis but `dim`) with explicit loops over the slices in float64 (math.fsum); it never
calls the kernels. The kernels are tested in test_weight_norm_kernels.py and
test_weight_norm_cuda.py.
"""
import copy
import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
from tinynorm import nn
from tinynorm.nn.weight_norm import init_weight_norm_, remove_weight_norm, weight_norm
from tinynorm.ops.weight_norm import _weight_norm, norm_except_dim
from tinynorm.testing import gradcheck

FAST = settings(max_examples=15, deadline=None)
DTYPES = [np.float32, np.float64]


# ---- the oracle ----------------------------------------------------------------

def _slices(shape, dim):
    """Index tuples of every element, grouped by the index along `dim` (one group for dim=None)."""
    groups = {}
    for idx in itertools.product(*(range(s) for s in shape)):
        key = 0 if dim is None else idx[dim % len(shape)]
        groups.setdefault(key, []).append(idx)
    return groups


def _g_of(g, key):
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    return float(g[0] if g.size == 1 else g[key])


def oracle_forward(v, g, dim):
    v = np.asarray(v, dtype=np.float64)
    w = np.zeros_like(v)
    norms = {}
    for key, idxs in _slices(v.shape, dim).items():
        norm = math.sqrt(math.fsum(v[i] ** 2 for i in idxs))
        norms[key] = norm
        for i in idxs:
            w[i] = _g_of(g, key) * v[i] / norm
    return w, norms


def oracle_backward(v, g, dim, gw):
    v, gw = np.asarray(v, np.float64), np.asarray(gw, np.float64)
    _, norms = oracle_forward(v, g, dim)
    gv = np.zeros_like(v)
    gg = np.zeros(np.asarray(g).size)
    for key, idxs in _slices(v.shape, dim).items():
        n = norms[key]
        grad_g = math.fsum(gw[i] * v[i] for i in idxs) / n
        gg[key] = grad_g
        for i in idxs:
            gv[i] = _g_of(g, key) / n * (gw[i] - grad_g * v[i] / n)
    return gv, gg.reshape(np.asarray(g).shape)


def g_shape(shape, dim):
    if dim is None:
        return ()
    d = dim % len(shape)
    return tuple(s if i == d else 1 for i, s in enumerate(shape))


@st.composite
def shape_and_dim(draw, max_side=4):
    shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=1, max_size=4)))
    nd = len(shape)
    dim = draw(st.one_of(st.none(), st.integers(-nd, nd - 1)))
    return shape, dim


# ---- the fused op against the oracle -------------------------------------------------

@FAST
@given(shape_and_dim(), st.integers(0, 2**31), st.sampled_from(DTYPES))
def test_op_matches_oracle(sd, seed, dtype):
    shape, dim = sd
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(shape)
    v = (v + 0.25 * np.sign(v)).astype(dtype)  # grad_v scales as g/||v||: keep slices off zero
    g = rng.uniform(0.5, 2, g_shape(shape, dim)).astype(dtype)
    gw = rng.standard_normal(shape).astype(dtype)
    vt, gt = tn.tensor(v, requires_grad=True), tn.tensor(g, requires_grad=True)
    w = _weight_norm(vt, gt, dim)
    w.backward(gw)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    ref_w, _ = oracle_forward(v, g, dim)
    ref_gv, ref_gg = oracle_backward(v, g, dim, gw)
    assert w.dtype == dtype and vt.grad.dtype == dtype and gt.grad.dtype == dtype
    assert gt.grad.shape == g.shape
    np.testing.assert_allclose(w.numpy(), ref_w, **tol)
    np.testing.assert_allclose(vt.grad.numpy(), ref_gv, **tol)
    np.testing.assert_allclose(gt.grad.numpy(), ref_gg, **tol)


def test_g_may_be_a_flat_vector_and_norm_except_dim_matches_oracle():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((3, 4, 2))
    for dim in (0, 1, 2, -1, None):
        _, norms = oracle_forward(v, np.ones(1), dim)
        n = norm_except_dim(tn.tensor(v), dim)
        assert n.shape == g_shape(v.shape, dim)
        np.testing.assert_allclose(n.numpy().reshape(-1), [norms[k] for k in sorted(norms)],
                                   rtol=1e-14)
    g = rng.uniform(0.5, 2, 4)
    w_flat = _weight_norm(v, g, 1).numpy()
    w_keep = _weight_norm(v, g.reshape(1, 4, 1), 1).numpy()
    np.testing.assert_array_equal(w_flat, w_keep)
    np.testing.assert_allclose(w_flat, oracle_forward(v, g, 1)[0], rtol=1e-13)


def test_numerics_float32_offset_nan_and_zero_slice():
    rng = np.random.default_rng(3)
    v = (1e4 + rng.standard_normal((6, 700))).astype(np.float32)
    n = norm_except_dim(v, 0).numpy().astype(np.float64).ravel()
    ref = np.sqrt((v.astype(np.float64) ** 2).sum(axis=1))
    np.testing.assert_allclose(n, ref, rtol=1e-7)
    v = rng.standard_normal((3, 5))
    v[1, 2] = np.nan
    w = _weight_norm(v, np.ones((3, 1)), 0).numpy()
    assert np.all(np.isnan(w[1])) and np.all(np.isfinite(w[[0, 2]]))
    v = np.zeros((2, 3))
    v[0] = 1.0
    w = _weight_norm(v, np.ones((2, 1)), 0).numpy()
    assert np.all(np.isnan(w[1])) and np.allclose(w[0], 1 / np.sqrt(3))


# ---- gradients by finite differences -------------------------------------------------

@FAST
@given(shape_and_dim(max_side=3), st.integers(0, 2**31))
def test_gradcheck_v_and_g(sd, seed):
    shape, dim = sd
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(shape) + 0.1
    g = rng.uniform(0.5, 2, g_shape(shape, dim))
    gradcheck(lambda a, b: _weight_norm(a, b, dim), [v, g])


# ---- module helpers -----------------------------------------------------------------

def test_weight_norm_module_layout_state_dict_and_remove():
    lin = nn.Linear(5, 3, dtype=np.float64)
    w0 = lin.weight.numpy().copy()
    assert weight_norm(lin) is lin
    assert isinstance(lin, nn.Linear) and repr(lin).startswith("Linear(in_features=5")
    assert list(lin.state_dict()) == ["bias", "weight_g", "weight_v"]
    assert [n for n, _ in lin.named_parameters()] == ["bias", "weight_g", "weight_v"]
    assert lin.weight_g.shape == (3, 1) and lin.weight_v.shape == (3, 5)
    np.testing.assert_allclose(lin.weight.numpy(), w0, rtol=1e-14)
    x = np.random.default_rng(4).standard_normal((4, 5))
    y0 = lin(tn.tensor(x)).numpy()
    np.testing.assert_allclose(y0, x @ w0.T + lin.bias.numpy(), rtol=1e-12)
    lin.weight_g.data[...] *= 2
    np.testing.assert_allclose(lin(tn.tensor(x)).numpy() - lin.bias.numpy(),
                               2 * (y0 - lin.bias.numpy()), rtol=1e-12)
    twin = copy.deepcopy(lin)
    twin.weight_g.data[...] = 0
    assert np.abs(lin(tn.tensor(x)).numpy() - y0).max() > 0.1
    np.testing.assert_allclose(twin(tn.tensor(x)).numpy(), np.broadcast_to(lin.bias.numpy(), (4, 3)))
    assert remove_weight_norm(lin) is lin
    assert type(lin) is nn.Linear
    assert list(lin.state_dict()) == ["bias", "weight"]
    assert isinstance(lin.weight, nn.Parameter)
    np.testing.assert_allclose(lin.weight.numpy(), 2 * w0, rtol=1e-14)
    lin.weight.data[...] = 0
    np.testing.assert_allclose(lin(tn.tensor(x)).numpy(), np.broadcast_to(lin.bias.numpy(), (4, 3)))

    conv = weight_norm(nn.Conv2d(3, 4, 2), dim=None)
    assert conv.weight_g.shape == () and conv.weight_v.shape == (4, 3, 2, 2)
    assert weight_norm(nn.Conv2d(3, 4, 2), dim=-3).weight_g.shape == (1, 3, 1, 1)
    conv2 = weight_norm(weight_norm(nn.Linear(3, 2), "bias"), "weight")
    assert list(conv2.state_dict()) == ["bias_g", "bias_v", "weight_g", "weight_v"]
    remove_weight_norm(conv2, "bias")
    assert type(conv2) is not nn.Linear and list(conv2.state_dict()) == ["weight_g", "weight_v", "bias"]
    remove_weight_norm(conv2)
    assert type(conv2) is nn.Linear


def test_weight_norm_trains_g_and_v():
    rng = np.random.default_rng(5)
    lin = weight_norm(nn.Linear(4, 3, dtype=np.float64))
    x = rng.standard_normal((6, 4))
    lin(tn.tensor(x)).sum().backward()
    assert lin.weight_g.grad is not None and lin.weight_v.grad is not None
    assert lin.bias.grad is not None
    assert lin.weight_g.grad.shape == (3, 1)


def test_errors_name_the_problem():
    lin = weight_norm(nn.Linear(3, 2))
    with pytest.raises(RuntimeError, match="Cannot register two weight_norm hooks on the same parameter weight"):
        weight_norm(lin)
    with pytest.raises(ValueError, match="no parameter named 'kernel'"):
        weight_norm(nn.Linear(3, 2), "kernel")
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        weight_norm(nn.Linear(3, 2), dim=2)
    with pytest.raises(ValueError, match="weight_norm of 'weight' not found"):
        remove_weight_norm(nn.Linear(3, 2))
    with pytest.raises(TypeError, match="tinynorm.nn.Module"):
        weight_norm(object())
    with pytest.raises(ValueError, match="g has shape \\(3,\\), expected \\(2,\\) or \\(2, 1\\)"):
        _weight_norm(np.ones((2, 3)), np.ones(3), 0)
    with pytest.raises(ValueError, match="g dtype float32 differs from v dtype float64"):
        _weight_norm(np.ones((2, 3)), np.ones((2, 1), np.float32), 0)
    with pytest.raises(ValueError, match="unsupported dtype int64"):
        _weight_norm(np.ones((2, 3), np.int64), np.ones((2, 1)), 0)
    with pytest.raises(ValueError, match="unsupported dtype float16"):
        _weight_norm(np.ones((2, 3), np.float16), np.ones((2, 1), np.float16), 0)
    with pytest.raises(ValueError, match="scalar"):
        _weight_norm(tn.tensor(np.array(2.0)), np.ones(()), None)
    with pytest.raises(TypeError, match="dim must be an int"):
        _weight_norm(np.ones((2, 3)), np.ones((2, 1)), 0.5)
    with pytest.raises(ValueError, match="apply weight_norm"):
        init_weight_norm_(nn.Linear(3, 2), np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match="needs a bias"):
        init_weight_norm_(weight_norm(nn.Linear(3, 2, bias=False)), np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match="dim=0"):
        init_weight_norm_(weight_norm(nn.Linear(3, 2), dim=None), np.ones((4, 3), np.float32))


# ---- data-dependent initialization -----------------------------------------------------

@pytest.mark.parametrize("make,shape,axes", [
    (lambda: nn.Linear(6, 5, dtype=np.float64), (32, 6), (0,)),
    (lambda: nn.Conv2d(3, 4, 3, padding=1, dtype=np.float64), (8, 3, 6, 6), (0, 2, 3)),
])
def test_data_dependent_init_standardizes_pre_activations(make, shape, axes):
    rng = np.random.default_rng(6)
    layer = weight_norm(make())
    batch = rng.standard_normal(shape) * 3 + 2
    before = layer(tn.tensor(batch)).numpy()
    assert np.abs(before.mean(axis=axes)).max() > 0.05 or np.abs(before.var(axis=axes) - 1).max() > 0.05
    assert init_weight_norm_(layer, batch) is layer
    out = layer(tn.tensor(batch)).numpy()
    np.testing.assert_allclose(out.mean(axis=axes), 0, atol=1e-10)
    np.testing.assert_allclose(out.var(axis=axes), 1, rtol=1e-8)
    init_weight_norm_(layer, batch, init_scale=0.1)
    np.testing.assert_allclose(layer(tn.tensor(batch)).numpy().var(axis=axes), 0.01, rtol=1e-8)


# ---- PyTorch as an extra oracle --------------------------------------------------------

def _torch_pair(kind, dim, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    if kind == "linear":
        ours, ref = nn.Linear(7, 5), torch.nn.Linear(7, 5)
        x = rng.standard_normal((6, 7)).astype(np.float32)
    else:
        ours, ref = nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(3, 4, 3, padding=1)
        x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = torch.nn.utils.weight_norm(ref, dim=-1 if dim is None else dim)
    weight_norm(ours, dim=dim)
    with torch.no_grad():
        ref.weight_g.mul_(torch.from_numpy(rng.uniform(0.5, 2, tuple(ref.weight_g.shape)).astype(np.float32)))
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    return torch, ours, ref, x


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("dim", [0, 1, None])
def test_matches_torch_weight_norm_float32(kind, dim):
    torch, ours, ref, x = _torch_pair(kind, dim, seed=7 + (dim or 0))
    assert list(ours.state_dict()) == list(ref.state_dict())
    xt = tn.tensor(x, requires_grad=True)
    xr = torch.from_numpy(x.copy()).requires_grad_()
    y, yr = ours(xt), ref(xr)
    dy = np.random.default_rng(8).standard_normal(y.shape).astype(np.float32)
    y.backward(dy)
    yr.backward(torch.from_numpy(dy))
    close = dict(atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(y.numpy(), yr.detach().numpy(), **close)
    np.testing.assert_allclose(xt.grad.numpy(), xr.grad.numpy(), **close)
    for name in ("weight_g", "weight_v", "bias"):
        np.testing.assert_allclose(getattr(ours, name).grad.numpy(),
                                   getattr(ref, name).grad.numpy(), **close, err_msg=name)
    np.testing.assert_allclose(ours.weight.numpy(), ref.weight.detach().numpy(), **close)
    remove_weight_norm(ours)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.nn.utils.remove_weight_norm(ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    np.testing.assert_allclose(ours.weight.numpy(), ref.weight.detach().numpy(), **close)


@FAST
@given(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.integers(0, 3), st.integers(0, 99))
def test_fused_op_matches_torch_weight_norm_on_random_shapes(shape, dim, seed):
    torch = pytest.importorskip("torch")
    dim = dim % len(shape)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(shape).astype(np.float32)
    g_shape = [1] * len(shape)
    g_shape[dim] = shape[dim]
    g = rng.uniform(0.5, 2, g_shape).astype(np.float32)
    dw = rng.standard_normal(shape).astype(np.float32)
    vt, gt = tn.tensor(v, requires_grad=True), tn.tensor(g, requires_grad=True)
    w = _weight_norm(vt, gt, dim)
    w.backward(dw)
    vr = torch.from_numpy(v.copy()).requires_grad_()
    gr = torch.from_numpy(g.copy()).requires_grad_()
    wr = torch._weight_norm(vr, gr, dim)
    wr.backward(torch.from_numpy(dw))
    close = dict(atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(w.numpy(), wr.detach().numpy(), **close)
    # float32 rounding in grad_v scales as g/||v|| * |dw| (one-element slices: ||v|| = |v|)
    norms = np.sqrt((v.astype(np.float64) ** 2).sum(
        axis=tuple(a for a in range(v.ndim) if a != dim), keepdims=True))
    scale = float(np.max(g / norms) * np.abs(dw).max())
    np.testing.assert_allclose(vt.grad.numpy(), vr.grad.numpy(), rtol=1e-5, atol=1e-5 * max(1.0, scale))
    np.testing.assert_allclose(gt.grad.numpy().reshape(g_shape), gr.grad.numpy(), **close)
