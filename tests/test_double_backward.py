"""Second order: gradgradcheck (double backward against finite differences of the first-order
gradient, float64, hypothesis shapes) for every op that has one; autograd.grad's semantics;
the ops that have none raise naming themselves; and each check can fail."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
import tinynorm.functional as F
from tinynorm import autograd
from tinynorm.autograd import grad
from tinynorm.testing import gradgradcheck

FAST = settings(max_examples=8, deadline=None)
SEEDS = st.integers(0, 2**31 - 1)


def rand(shape, seed, offset=0.0):
    return np.random.default_rng(seed).standard_normal(shape) + offset


def small(min_dims=1, max_dims=3, max_side=3):
    return st.lists(st.integers(1, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


# ---- generic ops --------------------------------------------------------------

UNARY = {
    "neg": lambda x: -(x * x),
    "pow": lambda x: x ** 3,
    "sqrt": lambda x: (x * x + 1).sqrt(),
    "exp": lambda x: x.exp(),
    "log": lambda x: (x * x + 1).log(),
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
    "relu": lambda x: (x * x * x).relu() * x,
    "sum": lambda x: (x * x).sum(dim=0),
    "mean": lambda x: (x * x).mean(dim=-1, keepdim=True),
    "reshape": lambda x: (x * x).reshape(-1),
    "permute": lambda x: (x * x).T,
    "getitem": lambda x: (x * x)[..., ::2],
    "log_softmax": lambda x: F.log_softmax(x, dim=-1),
    "softmax": lambda x: F.softmax(x, dim=0),
    "abs": lambda x: (x * x * x).abs() * x,
    "max_dim": lambda x: (x * x * x).max(dim=-1)[0] * 2,
    "min_dim_keepdim": lambda x: (x * x * x).min(dim=0, keepdim=True)[0] * x,
    "max_all": lambda x: (x * x * x).max() * x,
    "mse_loss": lambda x: F.mse_loss(x * x, x.tanh(), reduction="none"),
    "l1_loss": lambda x: F.l1_loss(x * x, x.tanh(), reduction="sum") * x,
}


@pytest.mark.parametrize("op", sorted(UNARY))
@FAST
@given(shape=small(), seed=SEEDS)
def test_unary_ops(op, shape, seed):
    gradgradcheck(UNARY[op], [rand(shape, seed)], name=op)


BINARY = {
    "add": lambda a, b: (a + b) * a,
    "sub": lambda a, b: (a - b) * b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1),
    "maximum": lambda a, b: a.maximum(b) * a,
    "cat": lambda a, b: F.cat([a * a, a * b], dim=-1),
    "stack": lambda a, b: F.stack([a * b, b * b], dim=0),
}


@pytest.mark.parametrize("op", sorted(BINARY))
@FAST
@given(shape=small(), broadcast=st.booleans(), seed=SEEDS)
def test_binary_ops(op, shape, broadcast, seed):
    other = shape[-1:] if broadcast and op not in ("cat", "stack") else shape
    gradgradcheck(BINARY[op], [rand(shape, seed), rand(other, seed + 1)], name=op)


@FAST
@given(n=st.integers(1, 3), k=st.integers(1, 3), m=st.integers(1, 3), batch=st.booleans(),
       seed=SEEDS)
def test_matmul(n, k, m, batch, seed):
    a = rand((2, n, k) if batch else (n, k), seed)
    gradgradcheck(lambda x, y: x @ y, [a, rand((k, m), seed + 1)], name="matmul")


@FAST
@given(n=st.integers(1, 3), fin=st.integers(1, 3), fout=st.integers(1, 3), seed=SEEDS)
def test_linear(n, fin, fout, seed):
    def fn(x, w, b):
        return F.linear(x, w, b).tanh()
    gradgradcheck(fn, [rand((n, fin), seed), rand((fout, fin), seed + 1), rand(fout, seed + 2)],
                  name="linear")


@FAST
@given(n=st.integers(1, 4), c=st.integers(2, 4), smoothing=st.sampled_from([0.0, 0.2]),
       weighted=st.booleans(), reduction=st.sampled_from(["mean", "sum", "none"]), seed=SEEDS)
def test_cross_entropy(n, c, smoothing, weighted, reduction, seed):
    target = np.random.default_rng(seed).integers(0, c, n)
    weight = np.abs(rand(c, seed + 1)) + 0.5 if weighted else None

    def fn(x):
        return F.cross_entropy(x, target, weight=weight, reduction=reduction,
                               label_smoothing=smoothing)
    gradgradcheck(fn, [rand((n, c), seed)], name="cross_entropy")


# ---- conv and pools ---------------------------------------------------------------

@FAST
@given(n=st.integers(1, 2), groups=st.sampled_from([1, 2]), k=st.integers(1, 3),
       stride=st.integers(1, 2), padding=st.integers(0, 1), dilation=st.integers(1, 2),
       bias=st.booleans(), seed=SEEDS)
def test_conv2d(n, groups, k, stride, padding, dilation, bias, seed):
    x, w = rand((n, 2, 5, 5), seed), rand((2, 2 // groups, k, k), seed + 1)
    inputs = [x, w] + ([rand(2, seed + 2)] if bias else [])

    def fn(x, w, b=None):
        return F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation,
                        groups=groups) ** 2
    gradgradcheck(fn, inputs, name="conv2d")


@FAST
@given(k=st.integers(1, 3), stride=st.integers(1, 2), ceil=st.booleans(),
       include_pad=st.booleans(), seed=SEEDS)
def test_pools(k, stride, ceil, include_pad, seed):
    x = rand((1, 2, 5, 4), seed)
    p = k // 2
    gradgradcheck(lambda x: F.max_pool2d(x * x, k, stride, p, ceil_mode=ceil) ** 2, [x],
                  name="max_pool2d")
    gradgradcheck(lambda x: F.avg_pool2d(x * x, k, stride, p, ceil_mode=ceil,
                                         count_include_pad=include_pad), [x], name="avg_pool2d")
    gradgradcheck(lambda x: F.adaptive_avg_pool2d(x * x, (k, 2)), [x],
                  name="adaptive_avg_pool2d")


# ---- norms ----------------------------------------------------------------------

@FAST
@given(n=st.integers(2, 3), c=st.integers(1, 3), spatial=small(0, 2, 2), affine=st.booleans(),
       seed=SEEDS)
def test_batch_norm_training(n, c, spatial, affine, seed):
    x = rand((n, c) + spatial, seed)
    params = [rand(c, seed + 1), rand(c, seed + 2)] if affine else []

    def fn(x, w=None, b=None):
        return F.batch_norm(x, None, None, w, b, training=True)
    gradgradcheck(fn, [x] + params, name="batch_norm (training)")


@FAST
@given(n=st.integers(1, 3), c=st.integers(1, 3), spatial=small(0, 2, 2), seed=SEEDS)
def test_batch_norm_eval(n, c, spatial, seed):
    x = rand((n, c) + spatial, seed)
    mean, var = tn.Tensor(rand(c, seed + 3)), tn.Tensor(np.abs(rand(c, seed + 4)) + 0.5)

    def fn(x, w, b):
        return F.batch_norm(x, mean, var, w, b, training=False) ** 2
    gradgradcheck(fn, [x, rand(c, seed + 1), rand(c, seed + 2)], name="batch_norm (eval)")


@FAST
@given(n=st.integers(1, 2), groups=st.sampled_from([1, 2]), per=st.integers(1, 2),
       spatial=small(0, 2, 2), affine=st.booleans(), seed=SEEDS)
def test_group_norm(n, groups, per, spatial, affine, seed):
    c = groups * per
    if per * int(np.prod(spatial)) == 1:
        spatial = (2,)
    x = rand((n, c) + spatial, seed)
    params = [rand(c, seed + 1), rand(c, seed + 2)] if affine else []

    def fn(x, w=None, b=None):
        return F.group_norm(x, groups, w, b)
    gradgradcheck(fn, [x] + params, name="group_norm")


@FAST
@given(lead=small(1, 2, 2), normalized=small(1, 2, 3), affine=st.booleans(), seed=SEEDS)
def test_layer_norm(lead, normalized, affine, seed):
    if int(np.prod(normalized)) == 1:
        normalized = (2,)
    x = rand(lead + normalized, seed)
    params = [rand(normalized, seed + 1), rand(normalized, seed + 2)] if affine else []

    def fn(x, w=None, b=None):
        return F.layer_norm(x, normalized, w, b)
    gradgradcheck(fn, [x] + params, name="layer_norm")


@FAST
@given(n=st.integers(1, 2), c=st.integers(1, 2), spatial=small(1, 2, 3), seed=SEEDS)
def test_instance_norm(n, c, spatial, seed):
    if int(np.prod(spatial)) == 1:
        spatial = (2,)
    x = rand((n, c) + spatial, seed)

    def fn(x, w, b):
        return F.instance_norm(x, weight=w, bias=b)
    gradgradcheck(fn, [x, rand(c, seed + 1), rand(c, seed + 2)], name="instance_norm")


@FAST
@given(lead=small(1, 2, 2), normalized=small(1, 2, 3), affine=st.booleans(), seed=SEEDS)
def test_rms_norm(lead, normalized, affine, seed):
    x = rand(lead + normalized, seed)
    params = [rand(normalized, seed + 1)] if affine else []

    def fn(x, w=None):
        return F.rms_norm(x, normalized, w, eps=1e-5)
    gradgradcheck(fn, [x] + params, name="rms_norm")


@FAST
@given(shape=small(1, 3, 3), dim=st.sampled_from([0, -1, None]), seed=SEEDS)
def test_weight_norm(shape, dim, seed):
    v = rand(shape, seed, offset=0.5)
    g = rand(() if dim is None else (shape[dim],), seed + 1)
    gradgradcheck(lambda v, g: F._weight_norm(v, g, dim), [v, g], name="weight_norm")


def test_modules_norms_through_the_nn_layer():
    """BatchNorm2d / GroupNorm / LayerNorm / weight_norm as modules (what users call)."""
    x = rand((3, 2, 2, 2), 0)
    for name, module in [("BatchNorm2d", tn.nn.BatchNorm2d(2, dtype=np.float64)),
                         ("GroupNorm", tn.nn.GroupNorm(2, 2, dtype=np.float64)),
                         ("LayerNorm", tn.nn.LayerNorm((2, 2), dtype=np.float64)),
                         ("InstanceNorm2d", tn.nn.InstanceNorm2d(2, affine=True,
                                                                 dtype=np.float64))]:
        gradgradcheck(lambda x: module(x), [x], name=name)


# ---- autograd.grad and backward(create_graph=True) -------------------------------------

def leaf(shape=(3,), seed=0):
    return tn.tensor(rand(shape, seed), requires_grad=True)


def test_hessian_vector_product_of_a_cubic():
    x, v = leaf(), rand(3, 1)
    (g,) = grad((x ** 3).sum(), x, create_graph=True)
    assert g.grad_fn is not None
    (hv,) = grad((g * tn.tensor(v)).sum(), x)
    np.testing.assert_allclose(hv.numpy(), 6 * x.numpy() * v)


def test_grad_leaves_dot_grad_alone_and_backward_create_graph_fills_it():
    x = leaf()
    (g,) = grad((x * x).sum(), x, create_graph=True)
    assert x.grad is None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.ones(3))
    y = leaf()
    (y ** 3).sum().backward(create_graph=True)
    assert y.grad.grad_fn is not None
    np.testing.assert_allclose(y.grad.numpy(), 3 * y.numpy() ** 2)


def test_grad_without_graph_returns_plain_tensors_and_frees_the_tape():
    x = leaf()
    loss = (x * x).sum()
    (g,) = grad(loss, x)
    assert g.grad_fn is None and not g.requires_grad
    with pytest.raises(RuntimeError, match="second time"):
        grad(loss, x)


def test_retain_graph_defaults_to_create_graph():
    x = leaf()
    loss = (x.tanh() * x).sum()
    grad(loss, x, create_graph=True)
    (again,) = grad(loss, x)
    assert again is not None


def test_allow_unused_and_the_error_that_names_the_input():
    x, unused = leaf(), leaf((2, 2), 1)
    loss = (x * x).sum()
    with pytest.raises(RuntimeError, match=r"not have been used.*input 1, shape \(2, 2\)"):
        grad(loss, [x, unused], retain_graph=True)
    gx, gu = grad(loss, [x, unused], allow_unused=True)
    assert gu is None and gx is not None


def test_grad_of_a_non_leaf_and_with_grad_outputs():
    x = leaf()
    h = x * 2
    y = h * h
    (gh,) = grad(y, h, grad_outputs=tn.tensor(np.ones(3)))
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())
    with pytest.raises(RuntimeError, match="does not require grad"):
        grad((x * 1).sum(), tn.tensor(np.ones(3)))


def test_tensor_hooks_see_tensors_under_create_graph():
    x = leaf()
    h = x * x
    seen = []
    h.register_hook(lambda g: seen.append(g) or g * 2)
    (g,) = grad(h.sum(), x, create_graph=True)
    assert isinstance(seen[0], tn.Tensor)
    np.testing.assert_allclose(g.numpy(), 4 * x.numpy())
    (gg,) = grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 4 * np.ones(3))


def test_first_order_backward_records_nothing_and_calls_no_graph_code(monkeypatch):
    """create_graph=False keeps the raw-array path: no new tape nodes, no backward_graph."""
    from tinynorm.ops import batch_norm, conv
    called = []
    for cls in (batch_norm.BatchNorm, conv.Conv2d):
        monkeypatch.setattr(cls, "backward_graph", lambda self, g, i: called.append(cls))
    x = tn.tensor(rand((2, 1, 4, 4), 0).astype(np.float32), requires_grad=True)
    w = tn.tensor(rand((2, 1, 3, 3), 1).astype(np.float32), requires_grad=True)
    loss = F.batch_norm(F.conv2d(x, w), None, None, training=True).relu().sum()
    before = next(autograd._tape_position)
    loss.backward()
    assert next(autograd._tape_position) == before + 1 and not called


# ---- ops without a second order -------------------------------------------------------

def second_order_of(fn, *inputs):
    leaves = [tn.tensor(a, requires_grad=True) for a in inputs]
    first = grad((fn(*leaves) ** 2).sum(), leaves, create_graph=True)
    return grad(sum(g.sum() for g in first), leaves, allow_unused=True)


@pytest.mark.parametrize("name,fn,args", [
    ("FilterResponseNorm", lambda x, w, b: F.filter_response_norm(x, w, b),
     [rand((2, 2, 3), 0), rand(2, 1), rand(2, 2)]),
    ("LocalResponseNorm", lambda x: F.local_response_norm(x, 2), [rand((2, 3, 3), 0)]),
])
def test_ops_without_second_order_raise_naming_the_op(name, fn, args):
    with pytest.raises(RuntimeError, match=f"{name}.*has no second-order gradient"):
        second_order_of(fn, *args)


def test_cross_minibatch_norm_raises_naming_its_combine():
    from tinynorm.nn.cross_batch_norm import CrossMiniBatchNorm
    bn = CrossMiniBatchNorm(2, subdivisions=2, dtype=np.float64)
    with pytest.raises(RuntimeError, match=r"BatchNorm.*combined by CrossMiniBatch.*has no second-order gradient"):
        second_order_of(lambda x: bn(x), rand((4, 2, 3), 0))


def test_third_order_of_a_norm_raises_naming_the_double_backward():
    x = leaf((3, 2), 0)
    (g,) = grad((F.layer_norm(x, (2,)) ** 3).sum(), x, create_graph=True)
    (gg,) = grad((g ** 2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="GroupNormGrad.*has no second-order gradient"):
        grad(gg.sum(), x)


# ---- every check can fail --------------------------------------------------------------

def test_gradgradcheck_catches_a_wrong_norm_double_backward(monkeypatch):
    from tinynorm.ops import norm_double_backward as ndb
    right = ndb.double_backward

    def wrong(*args):
        gx, gg, ggamma = right(*args)
        return gx * 1.01, gg, ggamma
    monkeypatch.setattr(ndb, "double_backward", wrong)
    x = rand((3, 2, 2), 0)
    for name, fn in [("batch_norm", lambda x: F.batch_norm(x, None, None, training=True) ** 3),
                     ("layer_norm", lambda x: F.layer_norm(x, (2, 2)) ** 3),
                     ("rms_norm", lambda x: F.rms_norm(x, (2,), eps=1e-5) ** 3)]:
        with pytest.raises(AssertionError, match=rf"gradgradcheck failed for {name}: input 0 "
                                                 r".* at index .*got .*expected"):
            gradgradcheck(fn, [x], name=name)


@pytest.mark.parametrize("target", ["gg", "ggamma"])
def test_gradgradcheck_catches_wrong_grad_output_and_weight_terms(monkeypatch, target):
    from tinynorm.ops import norm_double_backward as ndb
    right = ndb.double_backward

    def wrong(*args):
        gx, gg, ggamma = right(*args)
        return (gx, gg * 0.99, ggamma) if target == "gg" else (gx, gg, ggamma + 0.01)
    monkeypatch.setattr(ndb, "double_backward", wrong)
    x, w, b = rand((3, 2), 0), rand(2, 1), rand(2, 2)
    where = "grad_output" if target == "gg" else "input 1"
    with pytest.raises(AssertionError, match=f"group_norm: {where}"):
        gradgradcheck(lambda x, w, b: F.group_norm(x, 1, w, b), [x, w, b], name="group_norm")


def test_gradgradcheck_catches_wrong_weight_norm_conv_and_generic_second_orders(monkeypatch):
    from tinynorm.ops import conv_grad, math, weight_norm_grad
    right_wn = weight_norm_grad.WeightNormGrad.backward
    monkeypatch.setattr(weight_norm_grad.WeightNormGrad, "backward",
                        lambda self, f: tuple(a * 1.01 for a in right_wn(self, f)))
    with pytest.raises(AssertionError, match="weight_norm"):
        gradgradcheck(lambda v, g: F._weight_norm(v, g, 0), [rand((2, 3), 0, 1.0), rand(2, 1)],
                      name="weight_norm")
    right_cw = conv_grad.Conv2dWeightGrad.backward
    monkeypatch.setattr(conv_grad.Conv2dWeightGrad, "backward",
                        lambda self, u: tuple(None if a is None else a * 1.01
                                              for a in right_cw(self, u)))
    with pytest.raises(AssertionError, match="conv2d"):
        gradgradcheck(lambda x, w: F.conv2d(x, w), [rand((1, 1, 3, 3), 0), rand((1, 1, 2, 2), 1)],
                      name="conv2d")
    monkeypatch.setattr(math.Tanh, "backward_graph", lambda self, g, i: g * (1 - i[0].tanh()))
    with pytest.raises(AssertionError, match="tanh"):
        gradgradcheck(lambda x: x.tanh(), [rand(3, 0)], name="tanh")


def test_in_place_copy_into_a_graph_tensor_has_a_second_order():
    def fn(x, y):
        h = x * 1
        h.copy_(y * y)
        return h * x
    gradgradcheck(fn, [rand((2, 3), 0), rand(3, 1)], name="copy_")


def test_bn_lstm_has_a_second_order():
    tn.manual_seed(0)
    cell = tn.nn.BNLSTM(3, 4, max_length=4)
    x = tn.tensor(rand((4, 2, 3), 0).astype(np.float32), requires_grad=True)
    out = cell(x)
    out = out[0] if isinstance(out, tuple) else out
    (g,) = grad((out ** 2).sum(), x, create_graph=True)
    (gg,) = grad((g ** 2).sum(), x)
    assert np.all(np.isfinite(gg.numpy()))


def test_grad_runs_only_the_backward_that_leads_to_its_inputs():
    x = leaf()
    h = x.tanh()
    loss = (h * h).sum()
    (gh,) = grad(loss, h)
    np.testing.assert_allclose(gh.numpy(), 2 * h.numpy())
    assert not h.grad_fn.freed


def test_leaf_hooks_run_once_on_the_summed_gradient_under_create_graph():
    x = leaf()
    calls = []
    x.register_hook(lambda g: calls.append(g.numpy().copy()))
    (x * x + x).sum().backward(create_graph=True)
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], 2 * x.numpy() + 1)


def test_module_backward_hooks_refuse_create_graph_clearly():
    lin = tn.nn.Linear(3, 2, dtype=np.float64)
    lin.register_full_backward_hook(lambda m, gi, go: None)
    x = leaf()
    with pytest.raises(RuntimeError, match="module full backward hooks"):
        grad(lin(x).sum(), x, create_graph=True)
