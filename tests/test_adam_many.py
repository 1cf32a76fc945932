"""The multi-tensor Adam/AdamW step: against a naive float64 loop and against the per-parameter path."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
from tinynorm import nn, optim
from tinynorm.kernels.cpu import adam as K
from tinynorm.optim.optimizer import Optimizer

FAST = settings(max_examples=10, deadline=None)


def naive_adam(params, grads, steps, lr, betas, eps, weight_decay, decoupled):
    """The update of Kingma & Ba (with torch's L2 or AdamW's decoupled decay), element by element in float64."""
    b1, b2 = betas
    out = []
    for p0, gs in zip(params, grads):
        p = [float(x) for x in np.asarray(p0, np.float64).ravel()]
        m, v = [0.0] * len(p), [0.0] * len(p)
        for t in range(1, steps + 1):
            g = np.asarray(gs[t - 1], np.float64).ravel()
            for i in range(len(p)):
                gi = float(g[i])
                if weight_decay and decoupled:
                    p[i] *= 1 - lr * weight_decay
                elif weight_decay:
                    gi += weight_decay * p[i]
                m[i] = b1 * m[i] + (1 - b1) * gi
                v[i] = b2 * v[i] + (1 - b2) * gi * gi
                p[i] -= lr / (1 - b1 ** t) * m[i] / (math.sqrt(v[i]) / math.sqrt(1 - b2 ** t) + eps)
        out.append(np.array(p).reshape(np.shape(p0)))
    return out


def run(cls, params, grads, steps, per_parameter=False, **kw):
    ps = [nn.Parameter(p.copy()) for p in params]
    opt = cls(ps, **kw)
    for t in range(steps):
        for p, gs in zip(ps, grads):
            p.grad = tn.tensor(gs[t])
        if per_parameter:    # the path every parameter took before the multi-tensor kernel
            for group in opt.param_groups:
                Optimizer._step_group(opt, group)
        else:
            opt.step()
    return [p.numpy() for p in ps], opt


shape_lists = st.lists(st.lists(st.integers(1, 5), min_size=0, max_size=3).map(tuple),
                       min_size=1, max_size=11)


@FAST
@given(shape_lists, st.sampled_from([("Adam", 0.0), ("Adam", 0.1), ("AdamW", 0.1), ("AdamW", 0.0)]),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**31))
def test_matches_naive_loop_and_per_parameter_path(shapes, opt, dtype, seed):
    name, wd = opt
    rng = np.random.default_rng(seed)
    steps = 3
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for _ in range(steps)] for s in shapes]
    kw = dict(lr=0.01, betas=(0.8, 0.99), eps=1e-8, weight_decay=wd)
    fused, _ = run(getattr(optim, name), params, grads, steps, **kw)
    single, _ = run(getattr(optim, name), params, grads, steps, per_parameter=True, **kw)
    for a, b in zip(fused, single):
        np.testing.assert_array_equal(a, b)
    want = naive_adam(params, grads, steps, 0.01, (0.8, 0.99), 1e-8, wd, name == "AdamW")
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for a, w in zip(fused, want):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, w, rtol=tol, atol=tol)


def test_mixed_dtypes_strided_and_gradless_parameters():
    rng = np.random.default_rng(0)
    a = nn.Parameter(rng.standard_normal((3, 4)).astype(np.float32))
    b = nn.Parameter(rng.standard_normal(5))                              # float64
    c = nn.Parameter(np.asfortranarray(rng.standard_normal((4, 3))))     # strided: per-parameter path
    d = nn.Parameter(np.ones(2, np.float32))                             # no gradient: untouched
    opt = optim.Adam([a, b, c, d], lr=0.1)
    twins = [nn.Parameter(x.data.copy()) for x in (a, b, c)]
    ref = optim.Adam(twins, lr=0.1)
    for _ in range(2):
        for x, y in zip((a, b, c), twins):
            g = rng.standard_normal(x.shape).astype(x.dtype)
            x.grad, y.grad = tn.tensor(g), tn.tensor(g)
        opt.step()
        for group in ref.param_groups:
            Optimizer._step_group(ref, group)
    for x, y in zip((a, b, c), twins):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    np.testing.assert_array_equal(d.numpy(), np.ones(2, np.float32))
    assert d not in opt.state or not opt.state[d]
    assert opt.state[a]["step"] == 2 and opt.state[c]["exp_avg"].shape == (4, 3)


def test_state_dict_round_trip_keeps_the_fused_path_exact():
    rng = np.random.default_rng(1)
    shapes = [(6, 3), (6,), (2, 6), (2,)]
    params = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for _ in range(4)] for s in shapes]
    whole, _ = run(optim.Adam, params, grads, 4, lr=0.01)
    half, opt = run(optim.Adam, params, [g[:2] for g in grads], 2, lr=0.01)
    ps = [nn.Parameter(p.copy()) for p in half]
    resumed = optim.Adam(ps, lr=0.01)
    resumed.load_state_dict(opt.state_dict())
    for t in (2, 3):
        for p, gs in zip(ps, grads):
            p.grad = tn.tensor(gs[t])
        resumed.step()
    for a, b in zip(whole, ps):
        np.testing.assert_array_equal(a, b.numpy())


def test_kernel_chunks_and_empty_list():
    K.adam_update_many([], [], [], [], [], 0.9, 0.999, 1e-8)
    rng = np.random.default_rng(2)
    n = 2 * K.CHUNK + 3
    ps = [rng.standard_normal(k + 1) for k in range(n)]
    gs = [rng.standard_normal(k + 1) for k in range(n)]
    ms, vs = [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]
    want = [p.copy() for p in ps]
    wm, wv = [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]
    steps = []
    for k in range(n):          # a different step count per parameter
        steps += [0.1 / (1 - 0.9 ** (k + 1)), math.sqrt(1 - 0.999 ** (k + 1))]
    K.adam_update_many(ps, gs, ms, vs, steps, 0.9, 0.999, 1e-8)
    for k in range(n):
        K.adam_update(want[k], gs[k], wm[k], wv[k], 0.9, 0.999, steps[2 * k], steps[2 * k + 1], 1e-8)
        np.testing.assert_array_equal(ps[k], want[k])
        np.testing.assert_array_equal(vs[k], wv[k])


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_nan_and_inf_propagate_as_in_the_per_parameter_path(name):
    params = [np.array([1.0, np.inf, -2.0], np.float32), np.array([[0.5, np.nan]], np.float32)]
    grads = [[np.array([np.nan, 1.0, 0.0], np.float32)], [np.array([[np.inf, 1.0]], np.float32)]]
    fused, _ = run(getattr(optim, name), params, grads, 1, lr=0.1, weight_decay=0.5)
    single, _ = run(getattr(optim, name), params, grads, 1, per_parameter=True, lr=0.1,
                    weight_decay=0.5)
    for a, b in zip(fused, single):
        np.testing.assert_array_equal(a, b)


def test_replaced_parameter_and_moment_arrays_are_picked_up():
    rng = np.random.default_rng(3)
    a, b = nn.Parameter(rng.standard_normal((3, 2))), nn.Parameter(rng.standard_normal((3, 2)))
    opt, ref = optim.Adam([a], lr=0.1), optim.Adam([b], lr=0.1)

    def step(g):
        a.grad, b.grad = tn.tensor(g), tn.tensor(g)
        opt.step()
        for group in ref.param_groups:
            Optimizer._step_group(ref, group)

    step(rng.standard_normal((3, 2)))
    fresh = rng.standard_normal((3, 2))
    a.data, b.data = fresh.copy(), fresh.copy()                   # a new array: new views
    opt.state[a]["exp_avg"] = opt.state[a]["exp_avg"] * 0.5       # new moments too
    ref.state[b]["exp_avg"] = ref.state[b]["exp_avg"] * 0.5
    step(rng.standard_normal((3, 2)))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), fresh)
