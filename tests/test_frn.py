"""FRN + TLU op and modules: the float64 loop oracle, gradients, torch parity, errors.

The oracle (tests/oracles/frn.py) is written from docs/norms.md#frn--tlu; the kernels are tested
in test_frn_kernels.py and test_frn_cuda.py.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
from tinynorm.nn.frn import FilterResponseNorm2d, TLU
from tinynorm.ops.frn import filter_response_norm, tlu
from tinynorm.testing import check_op, gradcheck, hard_arrays, normal_arrays

from oracles.frn import oracle, params, tol

FAST = settings(max_examples=15, deadline=None)


def frn_shapes():
    return st.one_of(
        st.tuples(st.integers(1, 4), st.integers(1, 4)),
        st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)),
        st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 5)),
    )


# ---- op against the oracle -------------------------------------------------------------

@FAST
@given(frn_shapes(), st.integers(0, 2**31), st.sampled_from([np.float32, np.float64]),
       st.booleans())
def test_forward_matches_oracle(shape, seed, dtype, with_tau):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    g, b, t = params(rng, shape[1], dtype)
    z = filter_response_norm(tn.tensor(x), tn.tensor(g), tn.tensor(b), 1e-6,
                             tau=tn.tensor(t) if with_tau else None)
    assert z.dtype == dtype and z.shape == shape
    np.testing.assert_allclose(z.numpy(), oracle(x, g, b, 1e-6, t if with_tau else None),
                               **tol(dtype))


def test_check_op_input_and_every_parameter_on_hard_inputs():
    """Forward against the loop oracle, finite differences of x, gamma, beta, eps_learned and
    tau, float32 against float64, on constant planes, large offsets, tiny/huge scales, NaN/Inf."""
    def case(shape):
        C = shape[1]
        pos = normal_arrays((C,)).map(lambda a: 0.5 + np.abs(a))
        eps = st.one_of(normal_arrays((1,)), normal_arrays((C,))).map(
            lambda e: (0.05 + np.abs(e) * 0.2) * np.sign(e + 0.5))
        return st.tuples(hard_arrays(shape, (2, 3), nonfinite=True), pos, normal_arrays((C,)),
                         eps, normal_arrays((C,), scale=0.5))

    def fn(x, g, b, el, t):
        return filter_response_norm(x, g, b, 1e-3, el, tau=t)

    def expected(x, g, b, el, t):
        return oracle(x, g, b, 1e-3 + np.abs(el), t)
    report = check_op(fn, expected, frn_shapes().flatmap(case), max_examples=30, seed=0)
    assert report.nonfinite_cases > 0


@FAST
@given(frn_shapes(), st.integers(0, 2**31))
def test_tlu_gradcheck_and_fused_equals_composed(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    g, b, t = params(rng, shape[1])
    gradcheck(lambda a, tt: tlu(a, tt), [x, t])
    fused = filter_response_norm(tn.tensor(x), tn.tensor(g), tn.tensor(b), tau=tn.tensor(t))
    composed = tlu(filter_response_norm(tn.tensor(x), tn.tensor(g), tn.tensor(b)), tn.tensor(t))
    np.testing.assert_allclose(fused.numpy(), composed.numpy(), rtol=1e-14, atol=1e-15)


def test_fused_backward_equals_composed_backward():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5, 5))
    dz = rng.standard_normal(x.shape)
    g, b, t = params(rng, 4)
    grads = []
    for fused in (True, False):
        ts = [tn.tensor(a, requires_grad=True) for a in (x, g, b, t)]
        if fused:
            z = filter_response_norm(ts[0], ts[1], ts[2], tau=ts[3])
        else:
            z = tlu(filter_response_norm(ts[0], ts[1], ts[2]), ts[3])
        z.backward(dz)
        grads.append([a.grad.numpy() for a in ts])
    for a, c in zip(*grads):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)


def test_tie_gradient_is_split_in_halves():
    x = np.zeros((2, 3, 2, 2))
    z = tn.tensor(x, requires_grad=True)
    t = tn.tensor(np.zeros(3), requires_grad=True)
    tlu(z, t).backward(np.ones_like(x))
    assert np.all(z.grad.numpy() == 0.5) and np.all(t.grad.numpy() == 4.0)
    xs = [tn.tensor(x, requires_grad=True) for _ in range(3)]
    w, b, tau = (tn.tensor(v, requires_grad=True) for v in (np.ones(3), np.zeros(3), np.zeros(3)))
    filter_response_norm(xs[0], w, b, tau=tau).backward(np.ones_like(x))
    assert np.all(tau.grad.numpy() == 4.0) and np.all(b.grad.numpy() == 4.0)


def test_learned_eps_matters_for_fully_connected_input():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3)) * 1e-2
    g, b, _ = params(rng, 3)
    el = np.array([1e-4])
    z = filter_response_norm(tn.tensor(x), tn.tensor(g), tn.tensor(b), 1e-6, tn.tensor(el))
    np.testing.assert_allclose(z.numpy(), oracle(x[:, :, None], g, b, 1e-6 + 1e-4)[:, :, 0],
                               rtol=1e-12)
    plain = filter_response_norm(tn.tensor(x), tn.tensor(g), tn.tensor(b), 1e-6).numpy()
    assert not np.allclose(plain, z.numpy(), rtol=1e-3)


def test_module_parameters_defaults_and_inputs():
    m = FilterResponseNorm2d(4, dtype=np.float64)
    assert list(m.state_dict()) == ["weight", "bias", "tau"]
    assert np.all(m.weight.numpy() == 1) and np.all(m.bias.numpy() == 0)
    assert np.all(m.tau.numpy() == 0)
    learn = FilterResponseNorm2d(4, learnable_eps=True, dtype=np.float64)
    assert [n for n, _ in learn.named_parameters()] == ["weight", "bias", "tau", "eps_learned"]
    np.testing.assert_array_equal(learn.eps_learned.numpy(), np.full(4, 1e-4))
    plain = FilterResponseNorm2d(4, tlu=False, dtype=np.float64)
    assert plain.tau is None and list(plain.state_dict()) == ["weight", "bias"]
    rng = np.random.default_rng(2)
    x4, x2 = rng.standard_normal((2, 4, 3, 3)), rng.standard_normal((6, 4))
    for mod, tau in ((m, np.zeros(4)), (plain, None)):
        mod.bias.data[...] = rng.standard_normal(4)
        np.testing.assert_allclose(mod(tn.tensor(x4)).numpy(),
                                   oracle(x4, np.ones(4), mod.bias.numpy(), 1e-6, tau), rtol=1e-12)
    y = learn(tn.tensor(x2))
    np.testing.assert_allclose(y.numpy(), np.maximum(oracle(x2[:, :, None], np.ones(4), np.zeros(4),
                                                            1e-6 + 1e-4)[:, :, 0], 0), rtol=1e-12)
    y.sum().backward()
    assert learn.eps_learned.grad.shape == (4,)
    with pytest.raises(ValueError, match="expected 2D or 4D"):
        m(tn.tensor(np.zeros((2, 4, 3))))
    with pytest.raises(ValueError, match="channels"):
        m(tn.tensor(np.zeros((2, 3, 2, 2))))
    tl = TLU(4, dtype=np.float64)
    assert list(tl.state_dict()) == ["tau"]
    tl.tau.data[...] = 0.3
    np.testing.assert_array_equal(tl(tn.tensor(x4)).numpy(), np.maximum(x4, 0.3))
    assert "learnable_eps=True" in repr(learn)


@pytest.mark.parametrize("call, match", [
    (lambda: filter_response_norm(tn.tensor(np.zeros(3)), None, None), "rank 1"),
    (lambda: filter_response_norm(tn.tensor(np.zeros((2, 3), np.int64)), None, None), "int64"),
    (lambda: filter_response_norm(tn.tensor(np.zeros((2, 3), np.float16)), None, None), "float16"),
    (lambda: filter_response_norm(tn.tensor(np.zeros((2, 3))), tn.tensor(np.ones(4)), None),
     "weight has shape"),
    (lambda: filter_response_norm(tn.tensor(np.zeros((2, 3))), None, tn.tensor(np.ones(2))),
     "bias has shape"),
    (lambda: filter_response_norm(tn.tensor(np.zeros((2, 3))), None, None,
                                  tau=tn.tensor(np.ones((1, 3)))), "tau has shape"),
    (lambda: filter_response_norm(tn.tensor(np.zeros((2, 3))), None, None,
                                  eps_learned=tn.tensor(np.ones(2))), "eps_learned"),
    (lambda: filter_response_norm(tn.tensor(np.zeros((2, 3))), None, None, eps=np.nan), "eps"),
    (lambda: tlu(tn.tensor(np.zeros((2, 3))), tn.tensor(np.ones(4))), "tau has shape"),
    (lambda: tlu(tn.tensor(np.zeros(3)), tn.tensor(np.ones(3))), "rank 1"),
    (lambda: FilterResponseNorm2d(0), "num_features"),
])
def test_errors_name_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---- torch parity ---------------------------------------------------------------------

@settings(max_examples=10, deadline=None)
@given(frn_shapes(), st.integers(0, 2**31))
def test_matches_torch_composite_float32(shape, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = rng.standard_normal(shape).astype(np.float32)
    dz = rng.standard_normal(shape).astype(np.float32)
    ps = [p.astype(np.float32) for p in params(rng, C)] + [np.full(C, 1e-3, np.float32)]
    ts = [tn.tensor(a, requires_grad=True) for a in [x] + ps]
    z = filter_response_norm(ts[0], ts[1], ts[2], 1e-6, ts[4], tau=ts[3])
    z.backward(dz)
    T = [torch.tensor(a, requires_grad=True) for a in [x] + ps]
    X, G, B, TAU, EL = T
    sh = (1, -1) + (1,) * (X.dim() - 2)
    nu2 = X.pow(2).mean(dim=tuple(range(2, X.dim())), keepdim=True) if X.dim() > 2 else X.pow(2)
    Y = G.reshape(sh) * X * torch.rsqrt(nu2 + 1e-6 + EL.abs().reshape(sh)) + B.reshape(sh)
    Z = torch.maximum(Y, TAU.reshape(sh))
    Z.backward(torch.tensor(dz))
    np.testing.assert_allclose(z.numpy(), Z.detach().numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(ts, T):
        scale = max(1.0, float(np.abs(b.grad.numpy()).max()))
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-5 * scale)
