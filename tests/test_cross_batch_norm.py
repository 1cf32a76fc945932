"""CmBN and Cross-Iteration BN: loop oracles from docs/norms.md#cmbn-cross-mini-batch-bn and
docs/norms.md#cross-iteration-bn-cbn, the BN special cases, the union-of-batches properties,
the Taylor compensation, gradients, errors."""
import copy

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
from tinynorm import nn
from tinynorm.nn.cross_batch_norm import CrossIterationBatchNorm, CrossMiniBatchNorm
from tinynorm.testing import gradcheck

FAST = settings(max_examples=8, deadline=None)
EPS = 1e-5


def loop_moments(batches):
    """Per-channel mean and E[x^2] of (N, C, ...) arrays, by explicit loops over every value."""
    c = batches[0].shape[1]
    mu, nu = np.zeros(c), np.zeros(c)
    for ch in range(c):
        vals = [float(v) for b in batches for v in np.asarray(b, np.float64)[:, ch].ravel()]
        mu[ch] = sum(vals) / len(vals)
        nu[ch] = sum(v * v for v in vals) / len(vals)
    return mu, nu


def loop_normalize(x, mu, var, gamma, beta):
    y = np.empty(x.shape)
    for ch in range(x.shape[1]):
        y[:, ch] = gamma[ch] * (x[:, ch] - mu[ch]) / np.sqrt(var[ch] + EPS) + beta[ch]
    return y


def rand(shape, seed, scale=1.0, shift=0.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale + shift


# ---- CmBN -----------------------------------------------------------------------------

@FAST
@given(st.integers(1, 4), st.sampled_from([(6, 3), (4, 2, 3, 2)]), st.integers(0, 100))
def test_cmbn_minibatch_i_uses_the_statistics_of_minibatches_1_to_i(s, shape, seed):
    bn = CrossMiniBatchNorm(shape[1], subdivisions=s, dtype=np.float64)
    bn.weight.data[...] = rand(shape[1], seed + 1, 0.3, 1)
    bn.bias.data[...] = rand(shape[1], seed + 2)
    batches = [rand(shape, seed + 10 + i, 2, 3) for i in range(2 * s)]
    for i, x in enumerate(batches):
        start = (i // s) * s
        mu, nu = loop_moments(batches[start:i + 1])
        want = loop_normalize(x, mu, nu - mu * mu, bn.weight.data, bn.bias.data)
        np.testing.assert_allclose(bn(tn.tensor(x)).data, want, rtol=1e-10, atol=1e-10)


@FAST
@given(st.lists(st.integers(2, 30), min_size=1, max_size=4), st.integers(0, 100))
def test_cmbn_weights_uneven_minibatches_by_count(sizes, seed):
    """Mini-batches of 2 and 30 (the CLI's 3, 3, 2, 2 too): mini-batch i equals BN over 1..i."""
    bn = CrossMiniBatchNorm(3, subdivisions=len(sizes), dtype=np.float64)
    batches = [rand((n, 3), seed + i, 2, 3 * i) for i, n in enumerate(sizes)]
    for i, x in enumerate(batches):
        mu, nu = loop_moments(batches[:i + 1])
        want = loop_normalize(x, mu, nu - mu * mu, [1, 1, 1], [0, 0, 0])
        np.testing.assert_allclose(bn(tn.tensor(x)).data, want, rtol=1e-10, atol=1e-10)


def bn_pair(cls_kwargs, c, dtype=np.float64):
    a, b = nn.BatchNorm1d(c, dtype=dtype), CrossMiniBatchNorm(c, **cls_kwargs, dtype=dtype)
    for m in (a, b):
        m.weight.data[...] = rand(c, 1, 0.3, 1)
        m.bias.data[...] = rand(c, 2)
    return a, b


def test_cmbn_with_one_subdivision_is_bn():
    ref, cm = bn_pair(dict(subdivisions=1), 3)
    for step in range(3):
        x, dy = rand((5, 3, 4), step, 2, 1), rand((5, 3, 4), 50 + step)
        outs = []
        for m in (ref, cm):
            xt = tn.tensor(x, requires_grad=True)
            m.zero_grad()
            y = m(xt)
            y.backward(dy)
            outs.append((y.data, xt.grad.data, m.weight.grad.data, m.bias.grad.data))
        for a, b in zip(*outs):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cm.running_mean.data, ref.running_mean.data, rtol=1e-12)
    np.testing.assert_allclose(cm.running_var.data, ref.running_var.data, rtol=1e-12)


def test_cmbn_start_step_resets_and_eval_uses_running_stats():
    cm = CrossMiniBatchNorm(2, subdivisions=3, dtype=np.float64)
    a, b = rand((4, 2), 0, 1, 5), rand((4, 2), 1)
    cm(tn.tensor(a))
    cm.start_step()
    mu, nu = loop_moments([b])
    np.testing.assert_allclose(cm(tn.tensor(b)).data, loop_normalize(b, mu, nu - mu * mu, [1, 1], [0, 0]),
                               rtol=1e-10, atol=1e-10)
    cm.eval()
    rm, rv = cm.running_mean.data, cm.running_var.data
    np.testing.assert_allclose(cm(tn.tensor(b)).data, loop_normalize(b, rm, rv, [1, 1], [0, 0]), rtol=1e-12)


@FAST
@given(st.integers(1, 3), st.integers(0, 50))
def test_cmbn_gradients_with_earlier_minibatches_held_fixed(i, seed):
    cm = CrossMiniBatchNorm(2, subdivisions=4, dtype=np.float64)
    for j in range(i - 1):
        cm(tn.tensor(rand((2 + 5 * j, 2, 2), seed + j, 2, 1)))
    saved = list(cm._step_stats)

    def fn(x, w, b):
        cm._step_stats = list(saved)
        cm._parameters["weight"], cm._parameters["bias"] = w, b
        return cm(x)

    gradcheck(fn, [rand((3, 2, 2), seed + 9), rand(2, seed, 0.2, 1), rand(2, seed + 1)])


# ---- Cross-Iteration BN ---------------------------------------------------------------------

def make_cbn(kind, window, burn_in=0, seed=0):
    tn.manual_seed(seed)
    layer = (nn.Conv2d(2, 3, 3, padding=1, bias=False) if kind == "conv"
             else nn.Linear(4, 3, bias=False))
    layer.to(dtype=np.float64)
    cbn = CrossIterationBatchNorm(layer, window=window, burn_in=burn_in)
    cbn.to(dtype=np.float64)
    cbn.weight.data[...] = rand(3, seed + 1, 0.3, 1)
    cbn.bias.data[...] = rand(3, seed + 2)
    return cbn


def layer_out(cbn, x, weight=None):
    w = cbn.layer.weight.data if weight is None else weight
    if cbn.kind == "linear":
        return x @ w.T
    import tinynorm.functional as F
    return F.conv2d(tn.tensor(x), tn.tensor(w), padding=1).data


def inputs(kind, seed):
    return rand((5, 2, 4, 4) if kind == "conv" else (6, 4), seed, 1.5, 0.5)


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_cbn_with_window_one_is_bn(kind):
    cbn = make_cbn(kind, window=1)
    ref_layer = copy.deepcopy(cbn.layer)
    ref = nn.BatchNorm2d(3, dtype=np.float64) if kind == "conv" else nn.BatchNorm1d(3, dtype=np.float64)
    ref.weight.data[...], ref.bias.data[...] = cbn.weight.data, cbn.bias.data
    for step in range(3):
        x = inputs(kind, step)
        got, want = [], []
        for layer_then_bn, out in ((lambda t: cbn(t), got), (lambda t: ref(ref_layer(t)), want)):
            xt = tn.tensor(x, requires_grad=True)
            y = layer_then_bn(xt)
            y.backward(rand(y.shape, 99))
            out += [y.data, xt.grad.data]
        got += [cbn.layer.weight.grad.data, cbn.weight.grad.data]
        want += [ref_layer.weight.grad.data, ref.weight.grad.data]
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        cbn.zero_grad(), ref.zero_grad(), ref_layer.zero_grad()


@pytest.mark.parametrize("kind", ["conv", "linear"])
@pytest.mark.parametrize("window", [2, 3])
def test_cbn_with_fixed_weights_equals_bn_over_the_union_of_the_window(kind, window):
    cbn = make_cbn(kind, window=window)
    ys = []
    for t in range(window + 2):
        x = inputs(kind, 10 + t)
        ys.append(layer_out(cbn, x))
        mu, nu = loop_moments(ys[-window:])
        want = loop_normalize(ys[-1], mu, nu - mu * mu, cbn.weight.data, cbn.bias.data)
        np.testing.assert_allclose(cbn(tn.tensor(x)).data, want, rtol=1e-9, atol=1e-9)


def loop_compensated(kind, x_old, w_old, w_new):
    """Taylor-compensated (mu, nu) of an old iteration, with dmu/dW and dnu/dW by explicit loops."""
    if kind == "linear":
        patches = [x_old[n] for n in range(x_old.shape[0])]
    else:
        n, c, h, w = x_old.shape
        xp = np.pad(x_old, ((0, 0), (0, 0), (1, 1), (1, 1)))
        patches = [xp[i, :, a:a + 3, b:b + 3].ravel() for i in range(n) for a in range(h)
                   for b in range(w)]
    w_old2, w_new2 = w_old.reshape(w_old.shape[0], -1), w_new.reshape(w_new.shape[0], -1)
    mu, nu = np.zeros(w_old2.shape[0]), np.zeros(w_old2.shape[0])
    for ch in range(w_old2.shape[0]):
        ys = [float(np.dot(w_old2[ch], p)) for p in patches]
        m = len(patches)
        mu0 = sum(ys) / m
        nu0 = sum(v * v for v in ys) / m
        dmu = sum(patches) / m
        dnu = sum(2 * v * p for v, p in zip(ys, patches)) / m
        delta = w_new2[ch] - w_old2[ch]
        mu[ch] = mu0 + float(np.dot(dmu, delta))
        nu[ch] = nu0 + float(np.dot(dnu, delta))
    return mu, nu


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_cbn_compensates_old_statistics_to_the_current_weights(kind):
    window = 3
    cbn = make_cbn(kind, window=window)
    history = []
    for t in range(5):
        x = inputs(kind, 20 + t)
        w_now = cbn.layer.weight.data.copy()
        y_now = layer_out(cbn, x)
        mus, nus = [], []
        for x_old, w_old in history[-(window - 1):]:
            mu, nu = loop_compensated(kind, x_old, w_old, w_now)
            if np.all(nu - mu * mu >= 0):
                mus.append(mu)
                nus.append(nu)
        mu_c, nu_c = loop_moments([y_now])
        mu_bar = (mu_c + sum(mus)) / (1 + len(mus))
        nu_bar = (nu_c + sum(nus)) / (1 + len(nus))
        want = loop_normalize(y_now, mu_bar, nu_bar - mu_bar ** 2, cbn.weight.data, cbn.bias.data)
        np.testing.assert_allclose(cbn(tn.tensor(x)).data, want, rtol=1e-8, atol=1e-8)
        history.append((x, w_now))
        cbn.layer.weight.data[...] += rand(w_now.shape, 40 + t, 0.05)


def test_cbn_mean_compensation_is_exact_for_linear_layers():
    cbn = make_cbn("linear", window=2)
    x0 = inputs("linear", 0)
    cbn(tn.tensor(x0))
    cbn.layer.weight.data[...] += 0.1
    rec = cbn._history[0]
    w = cbn.layer.weight.data
    mu_comp = rec.mu + ((w - rec.weight) * rec.dmu).sum(axis=1)
    np.testing.assert_allclose(mu_comp, (x0 @ w.T).mean(axis=0), rtol=1e-12)


def test_cbn_drops_a_past_iteration_whose_compensated_variance_is_negative():
    cbn = make_cbn("linear", window=2)
    x0 = inputs("linear", 0)
    cbn(tn.tensor(x0))
    cbn.layer.weight.data[...] *= -3.0        # a large step: the linearized nu goes below mu^2
    rec = cbn._history[0]
    w = cbn.layer.weight.data
    mu = rec.mu + ((w - rec.weight) * rec.dmu).sum(axis=1)
    nu = rec.nu + ((w - rec.weight) * rec.dnu).sum(axis=1)
    assert np.all(nu - mu * mu < 0)
    x1 = inputs("linear", 1)
    y1 = x1 @ w.T
    m, e = loop_moments([y1])
    want = loop_normalize(y1, m, e - m * m, cbn.weight.data, cbn.bias.data)
    np.testing.assert_allclose(cbn(tn.tensor(x1)).data, want, rtol=1e-10, atol=1e-10)


def test_cbn_burn_in_is_plain_bn_while_the_window_fills():
    cbn = make_cbn("linear", window=3, burn_in=2)
    for t in range(3):
        x = inputs("linear", t)
        y = layer_out(cbn, x)
        out = cbn(tn.tensor(x)).data
        m, e = loop_moments([y])
        plain = loop_normalize(y, m, e - m * m, cbn.weight.data, cbn.bias.data)
        if t < 2:
            np.testing.assert_allclose(out, plain, rtol=1e-10, atol=1e-10)
        else:
            assert not np.allclose(out, plain) and len(cbn._history) == 2


@FAST
@given(st.sampled_from(["conv", "linear"]), st.integers(0, 50))
def test_cbn_gradients_of_input_and_affine_with_a_fixed_window(kind, seed):
    cbn = make_cbn(kind, window=3, seed=seed)
    for t in range(2):
        cbn(tn.tensor(inputs(kind, seed + t)))
        cbn.layer.weight.data[...] += rand(cbn.layer.weight.shape, seed + 5 + t, 0.02)
    saved = copy.deepcopy(cbn._history)

    def fn(x, g, b):
        cbn._history = copy.deepcopy(saved)
        cbn._parameters["weight"], cbn._parameters["bias"] = g, b
        return cbn(x)

    gradcheck(fn, [inputs(kind, seed + 7), rand(3, seed, 0.2, 1), rand(3, seed + 1)])


@FAST
@given(st.sampled_from(["conv", "linear"]), st.integers(0, 50))
def test_cbn_gradient_of_the_layer_weight_in_burn_in(kind, seed):
    cbn = make_cbn(kind, window=3, burn_in=10 ** 6, seed=seed)
    x = inputs(kind, seed)

    def fn(w):
        cbn.layer._parameters["weight"] = w
        return cbn(tn.tensor(x))

    gradcheck(fn, [cbn.layer.weight.data.copy()])


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="without bias"):
        CrossIterationBatchNorm(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="needs a Conv2d or Linear layer, got ReLU"):
        CrossIterationBatchNorm(nn.ReLU())
    with pytest.raises(ValueError, match="window must be a positive integer"):
        CrossIterationBatchNorm(nn.Linear(3, 2, bias=False), window=0)
    with pytest.raises(ValueError, match="subdivisions must be a positive integer"):
        CrossMiniBatchNorm(3, subdivisions=0)
    with pytest.raises(ValueError, match="subdivisions must be a positive integer, got 2.5"):
        CrossMiniBatchNorm(3, subdivisions=2.5)
    with pytest.raises(ValueError, match="window must be a positive integer, got 1.5"):
        CrossIterationBatchNorm(nn.Linear(3, 2, bias=False), window=1.5)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        CrossMiniBatchNorm(3)(tn.tensor(np.ones((1, 3), np.float32)))
    with pytest.raises(ValueError, match="3 channels"):
        CrossMiniBatchNorm(2)(tn.tensor(np.ones((4, 3), np.float32)))
