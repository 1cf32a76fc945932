"""F.linear's fused op (TBackward0 -> AddmmBackward0/MmBackward0) against a float64 loop oracle,
finite differences (first and second order), the tape, the profiler and hooks."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
import tinynorm.functional as F
from tinynorm import nn, profiler
from tinynorm.tape import next_functions, node_name, saved_bytes
from tinynorm.testing import gradcheck, gradgradcheck

FAST = settings(max_examples=15, deadline=None)


def oracle(x, w, b, dy):
    """y, dx, dw, db of ``y = x W^T + b`` over the last axis of ``x``, element by element."""
    x, w, dy = (np.asarray(a, np.float64) for a in (x, w, dy))
    n_out, n_in = w.shape
    x2, g2 = x.reshape(-1, n_in), dy.reshape(-1, n_out)
    y2, dx2 = np.zeros((x2.shape[0], n_out)), np.zeros_like(x2)
    dw, db = np.zeros_like(w), np.zeros(n_out)
    for r in range(x2.shape[0]):
        for o in range(n_out):
            y2[r, o] = (0.0 if b is None else float(b[o])) + sum(x2[r, i] * w[o, i] for i in range(n_in))
            db[o] += g2[r, o]
            for i in range(n_in):
                dx2[r, i] += g2[r, o] * w[o, i]
                dw[o, i] += g2[r, o] * x2[r, i]
    return y2.reshape(dy.shape), dx2.reshape(x.shape), dw, db


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)


def cases():
    """(lead, in_features, out_features): the input is ``lead + (in_features,)``."""
    return st.tuples(st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple),
                     st.integers(1, 5), st.integers(1, 4))


def draw(case, seed, dtype, bias):
    lead, n_in, n_out = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(lead + (n_in,)).astype(dtype)
    w = rng.standard_normal((n_out, n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype) if bias else None
    dy = rng.standard_normal(lead + (n_out,)).astype(dtype)
    return x, w, b, dy


@FAST
@given(cases(), st.integers(0, 2**31), st.sampled_from([np.float32, np.float64]), st.booleans())
def test_forward_backward_match_oracle(case, seed, dtype, bias):
    x, w, b, dy = draw(case, seed, dtype, bias)
    xt, wt = tn.tensor(x, requires_grad=True), tn.tensor(w, requires_grad=True)
    bt = tn.tensor(b, requires_grad=True) if bias else None
    y = F.linear(xt, wt, bt)
    y.backward(dy)
    ey, edx, edw, edb = oracle(x, w, b, dy)
    assert y.dtype == dtype and y.shape == dy.shape
    np.testing.assert_allclose(y.numpy(), ey, **tol(dtype))
    np.testing.assert_allclose(xt.grad.numpy(), edx, **tol(dtype))
    np.testing.assert_allclose(wt.grad.numpy(), edw, **tol(dtype))
    assert wt.grad.dtype == dtype and wt.grad.data.flags.c_contiguous
    if bias:
        np.testing.assert_allclose(bt.grad.numpy(), edb, **tol(dtype))


@FAST
@given(cases(), st.integers(0, 2**31), st.booleans())
def test_gradcheck_float64(case, seed, bias):
    x, w, b, _ = draw(case, seed, np.float64, bias)
    if bias:
        assert gradcheck(lambda x, w, b: F.linear(x, w, b), [x, w, b])
    else:
        assert gradcheck(lambda x, w: F.linear(x, w), [x, w])


@settings(max_examples=8, deadline=None)
@given(cases(), st.integers(0, 2**31), st.booleans())
def test_gradgradcheck_float64(case, seed, bias):
    x, w, b, _ = draw(case, seed, np.float64, bias)
    if bias:
        assert gradgradcheck(lambda x, w, b: F.linear(x, w, b).tanh(), [x, w, b], name="linear")
    else:
        assert gradgradcheck(lambda x, w: F.linear(x, w).tanh(), [x, w], name="linear")


def test_double_backward_through_the_weight_gradient_is_on_the_tape():
    x = tn.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    w = tn.tensor(np.ones((4, 3)), requires_grad=True)
    (gw,) = tn.autograd.grad(F.linear(x, w).sum(), [w], create_graph=True)
    (gx,) = tn.autograd.grad((gw * gw).sum(), [x])
    # gw[o, i] = sum_n x[n, i], so d sum(gw^2) / d x[n, i] = 2 * out_features * sum_n x[n, i]
    np.testing.assert_allclose(gx.numpy(), np.broadcast_to(8 * x.numpy().sum(0), (2, 3)))


@pytest.mark.parametrize("bias", [True, False])
def test_tape_is_pytorchs(bias):
    lin = nn.Linear(3, 2, bias=bias, dtype=np.float64)
    x = tn.tensor(np.ones((5, 3)), requires_grad=True)
    y = lin(x)
    node = y.grad_fn
    assert node_name(node) == ("AddmmBackward0" if bias else "MmBackward0")
    edges = next_functions(node)
    assert len(edges) == (3 if bias else 2)
    if bias:
        assert edges[0][0].name() == "AccumulateGrad" and edges[0][0].variable is lin.bias
    assert edges[-2][0].variable is x
    t = edges[-1][0]
    assert node_name(t) == "TBackward0" and saved_bytes(t) == 0
    assert next_functions(t)[0][0].variable is lin.weight
    # addmm/mm saves its two matrix operands: the input and the transposed weight
    assert saved_bytes(node) == x.data.nbytes + lin.weight.data.nbytes


def test_input_without_grad_is_a_none_edge_and_nd_input_is_flattened():
    w = tn.tensor(np.ones((4, 3)), requires_grad=True)
    y = F.linear(tn.tensor(np.ones((2, 5, 3))), w, tn.tensor(np.zeros(4), requires_grad=True))
    assert y.shape == (2, 5, 4) and node_name(y.grad_fn) == "ViewBackward0"
    mm = next_functions(y.grad_fn)[0][0]
    assert node_name(mm) == "AddmmBackward0" and next_functions(mm)[1] == (None, 0)
    y1 = F.linear(tn.tensor(np.ones(3), requires_grad=True), w)
    assert y1.shape == (4,)


def test_mixed_dtypes_keep_the_promoting_path():
    x = tn.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    w = tn.tensor(np.ones((4, 3)), requires_grad=True)
    y = F.linear(x, w, tn.tensor(np.ones(4)))
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float64


def test_in_place_change_of_a_saved_operand_is_caught():
    x = tn.tensor(np.ones((2, 3)), requires_grad=True)
    w = tn.tensor(np.ones((4, 3)), requires_grad=True)
    y = F.linear(x, w)
    with tn.no_grad():
        w.zero_()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_profiler_names_forward_and_backward():
    lin = nn.Linear(3, 2)
    with profiler.profile() as prof:
        lin(tn.tensor(np.ones((4, 3), np.float32))).sum().backward()
    keys = {e.key for e in prof.key_averages()}
    assert {"Linear", "T", "AddmmBackward0", "TBackward0"} <= keys


def test_hooks_see_and_replace_the_gradients():
    lin = nn.Linear(3, 2, dtype=np.float64)
    x = tn.tensor(np.ones((4, 3)), requires_grad=True)
    seen = []
    lin.weight.register_hook(lambda g: seen.append(g.numpy().copy()))
    y = lin(x)
    y.register_hook(lambda g: g * 2)
    y.sum().backward()
    np.testing.assert_allclose(seen[0], np.full((2, 3), 8.0))
    np.testing.assert_allclose(lin.weight.grad.numpy(), np.full((2, 3), 8.0))
    np.testing.assert_allclose(lin.bias.grad.numpy(), np.full(2, 8.0))
    np.testing.assert_allclose(x.grad.numpy(), 2 * lin.weight.numpy().sum(0) * np.ones((4, 3)))


@pytest.mark.parametrize("args, err, match", [
    (((2, 3), (4,), None), ValueError, "weight of shape"),
    (((), (4, 3), None), ValueError, "0-d tensor"),
    (((2, 5), (4, 3), None), ValueError, "5 features but weight expects 3"),
    (((2, 3), (4, 3), (3,)), ValueError, r"bias has shape \(3,\), expected \(4,\)"),
])
def test_errors_name_the_problem(args, err, match):
    x, w, b = (None if s is None else tn.tensor(np.ones(s)) for s in args)
    with pytest.raises(err, match=match):
        F.linear(x, w, b)


def test_integer_input_is_refused():
    with pytest.raises((TypeError, ValueError), match="linear input"):
        F.linear(tn.tensor(np.ones((2, 3), np.int64)), tn.tensor(np.ones((4, 3))))


def _shape_of(node):
    """The graph below ``node`` as nested (name, children) tuples; works on both libraries' nodes."""
    if node is None:
        return None
    return (node.name().split("::")[-1], tuple(_shape_of(n) for n, _ in node.next_functions))


@pytest.mark.parametrize("lead, bias", [((5,), True), ((5,), False), ((2, 5), True), ((), True)])
def test_tape_matches_torch(lead, bias):
    torch = pytest.importorskip("torch")
    x = np.ones(lead + (3,))
    w, b = np.ones((2, 3)), np.ones(2)
    ours = F.linear(tn.tensor(x, requires_grad=True), tn.tensor(w, requires_grad=True),
                    tn.tensor(b, requires_grad=True) if bias else None)
    theirs = torch.nn.functional.linear(
        torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True),
        torch.tensor(b, requires_grad=True) if bias else None)
    assert _shape_of(ours.grad_fn) == _shape_of(theirs.grad_fn)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_large_enough_for_the_threaded_gemm(dtype):
    # 2 * 256 * 128 * 160 flops: above blas.PARALLEL_MIN_FLOPS, so every product takes the Numba path
    x, w, b, dy = draw(((256,), 128, 160), 3, dtype, True)
    xt, wt, bt = (tn.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.linear(xt, wt, bt)
    y.backward(dy)
    x64, w64, g64 = (a.astype(np.float64) for a in (x, w, dy))
    t = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.numpy(), x64 @ w64.T + b, **t)
    np.testing.assert_allclose(xt.grad.numpy(), g64 @ w64, **t)
    np.testing.assert_allclose(wt.grad.numpy(), g64.T @ x64, **t)
    np.testing.assert_allclose(bt.grad.numpy(), g64.sum(0), **t)
