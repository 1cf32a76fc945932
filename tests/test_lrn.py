"""LRN: a naive float64 loop oracle, gradients, torch parity, kernels (serial/parallel, CUDA), errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numba import cuda

import tinynorm as tn
import tinynorm.kernels.cpu.lrn as KC
import tinynorm.kernels.cuda.lrn as KG
from tinynorm.nn.lrn import LocalResponseNorm
from tinynorm.ops.lrn import local_response_norm
from tinynorm.testing import check_op, hard_arrays

FAST = settings(max_examples=15, deadline=None)
BETAS = [0.75, 0.5, 0.3, 1.0]


# ---- the oracle: explicit channel loops from NORMS.md (vectorized over n and s only) ----

def oracle(x, size, alpha, beta, k, dy=None):
    """b (and da when dy is given) by the definitions, channel by channel, window by window."""
    x = np.asarray(x, np.float64)
    shape = x.shape
    a = x.reshape(shape[0], shape[1], -1)
    C = a.shape[1]
    lo, hi = size // 2, (size - 1) // 2
    d = np.empty_like(a)
    for c in range(C):
        total = np.zeros_like(a[:, 0])
        for cc in range(c - lo, c + hi + 1):
            if 0 <= cc < C:
                total = total + a[:, cc] ** 2
        d[:, c] = k + alpha / size * total
    b = a * d ** -beta
    if dy is None:
        return b.reshape(shape)
    g = np.asarray(dy, np.float64).reshape(a.shape)
    da = g * d ** -beta
    for c in range(C):
        t = g[:, c] * a[:, c] * d[:, c] ** (-beta - 1)
        for j in range(c - lo, c + hi + 1):
            if 0 <= j < C:
                da[:, j] = da[:, j] - 2 * alpha * beta / size * a[:, j] * t
    return b.reshape(shape), da.reshape(shape)


def lrn_shapes():
    return st.lists(st.integers(1, 4), min_size=1, max_size=3).flatmap(
        lambda rest: st.tuples(st.integers(1, 3), st.integers(1, 9)).map(lambda nc: nc + tuple(rest)))


def lrn_args():
    return st.tuples(st.integers(1, 7), st.floats(0.01, 2.0), st.sampled_from(BETAS),
                     st.floats(0.5, 2.0))


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)


# ---- op and module against the oracle -------------------------------------------------

@FAST
@given(lrn_shapes(), lrn_args(), st.integers(0, 2**31), st.sampled_from([np.float32, np.float64]))
def test_forward_backward_match_oracle(shape, args, seed, dtype):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    xt = tn.tensor(x, requires_grad=True)
    y = local_response_norm(xt, *args)
    y.backward(dy)
    eb, eda = oracle(x, *args, dy=dy)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y.numpy(), eb, **tol(dtype))
    np.testing.assert_allclose(xt.grad.numpy(), eda, **tol(dtype))


def test_check_op_against_the_oracle_on_hard_inputs():
    """Forward against the loop oracle, finite differences, float32 against float64, on
    constant channels, large offsets, tiny/huge scales and planted NaN/Inf."""
    inputs = st.tuples(lrn_shapes(), lrn_args()).flatmap(
        lambda t: st.tuples(hard_arrays(t[0], None, nonfinite=True), *map(st.just, t[1])))
    report = check_op(local_response_norm, lambda x, *args: oracle(x, *args), inputs,
                      max_examples=30)
    assert report.nonfinite_cases > 0


def test_alexnet_variant_is_alpha_times_n():
    """AlexNet: b = a / (2 + 1e-4 * sum a^2)^0.75 over n = 5 channels, alpha not divided by n."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 3, 3)) * 20
    C = 7
    expect = np.empty_like(x)
    for c in range(C):
        s = sum(x[:, j] ** 2 for j in range(max(0, c - 2), min(C - 1, c + 2) + 1))
        expect[:, c] = x[:, c] / (2.0 + 1e-4 * s) ** 0.75
    got = local_response_norm(tn.tensor(x), 5, alpha=1e-4 * 5, beta=0.75, k=2.0).numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-12)


def test_module_has_no_state_and_matches_functional():
    m = LocalResponseNorm(3, alpha=0.1, beta=0.5, k=2.0)
    assert list(m.parameters()) == [] and list(m.state_dict()) == []
    assert repr(m) == "LocalResponseNorm(3, alpha=0.1, beta=0.5, k=2.0)"
    x = np.random.default_rng(1).standard_normal((2, 5, 4))
    np.testing.assert_allclose(m(tn.tensor(x)).numpy(), oracle(x, 3, 0.1, 0.5, 2.0), rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(x=np.zeros((2, 3))), "3D or higher"),
    (dict(x=np.zeros((2, 3, 4), np.int64)), "int64"),
    (dict(x=np.zeros((2, 3, 4), np.float16)), "float16"),
    (dict(size=0), "size must be a positive integer"),
    (dict(size=2.5), "size must be a positive integer"),
    (dict(alpha=np.nan), "alpha"),
    (dict(beta="x"), "beta"),
    (dict(k=np.inf), "k must be finite"),
])
def test_errors_name_the_problem(kwargs, match):
    args = dict(x=np.zeros((2, 3, 4)), size=3, alpha=1e-4, beta=0.75, k=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        local_response_norm(tn.tensor(args.pop("x")), **args)


# ---- torch parity ---------------------------------------------------------------------

@settings(max_examples=10, deadline=None)
@given(lrn_shapes(), lrn_args(), st.integers(0, 2**31))
def test_matches_torch_float32(shape, args, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    xt = tn.tensor(x, requires_grad=True)
    y = local_response_norm(xt, *args)
    y.backward(dy)
    X = torch.tensor(x, requires_grad=True)
    Y = torch.nn.functional.local_response_norm(X, *args)
    Y.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.numpy(), Y.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(xt.grad.numpy(), X.grad.numpy(), rtol=1e-5, atol=1e-5)


# ---- kernels ----------------------------------------------------------------------------

def run_kernels(K, x3, size, alpha, beta, k, dy3, save=False, **kw):
    y3, dx3 = np.empty_like(x3), np.empty_like(x3)
    sc = np.empty_like(x3) if save else None
    K.lrn_forward(x3, size, alpha, beta, k, y3, sc, **kw)
    K.lrn_backward(dy3, x3, size, alpha, beta, k, sc, dx3, **kw)
    return y3, dx3


class TestCpuKernels:
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    @pytest.mark.parametrize("beta, size", [(0.75, 5), (0.5, 4), (0.6, 7)])
    def test_serial_and_parallel_paths_agree_with_oracle(self, beta, size, dtype, monkeypatch):
        rng = np.random.default_rng(2)
        x3 = rng.standard_normal((2, 40, 600)).astype(dtype)
        assert x3.size >= KC.PARALLEL_MIN_ELEMENTS and 600 > KC.FORWARD_TILE and 40 > KC.REFRESH
        dy3 = rng.standard_normal(x3.shape).astype(dtype)
        save = KC.beta_mode(beta) == KC.MODE_POW
        par = run_kernels(KC, x3, size, 0.5, beta, 1.0, dy3, save)
        monkeypatch.setattr(KC, "PARALLEL_MIN_ELEMENTS", 1 << 40)
        ser = run_kernels(KC, x3, size, 0.5, beta, 1.0, dy3, save)
        unsaved = run_kernels(KC, x3, size, 0.5, beta, 1.0, dy3, False)
        eb, eda = oracle(x3, size, 0.5, beta, 1.0, dy3)
        for y3, dx3 in (par, ser, unsaved):
            assert y3.dtype == dtype and dx3.dtype == dtype
            np.testing.assert_allclose(y3, eb, **tol(dtype))
            np.testing.assert_allclose(dx3, eda, **tol(dtype))

    @pytest.mark.parametrize("bad", [np.nan, np.inf])
    def test_nan_and_inf_stay_inside_their_windows(self, bad):
        rng = np.random.default_rng(3)
        x3 = rng.standard_normal((2, 40, 9))
        x3[1, 14, 4] = bad
        dy3 = rng.standard_normal(x3.shape)
        y3, dx3 = run_kernels(KC, x3, 5, 0.5, 0.75, 1.0, dy3)
        with np.errstate(invalid="ignore", over="ignore"):
            eb, eda = oracle(x3, 5, 0.5, 0.75, 1.0, dy3)
        np.testing.assert_array_equal(np.isnan(y3), np.isnan(eb))
        np.testing.assert_array_equal(np.isnan(dx3), np.isnan(eda))
        assert np.isnan(eb).any() and np.isfinite(eb[0]).all()
        np.testing.assert_allclose(y3, eb, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(dx3, eda, rtol=1e-10, atol=1e-12)

    def test_sliding_sums_survive_huge_dynamic_range(self):
        """A channel of 1e8 leaving the window must not leave rounding garbage behind."""
        rng = np.random.default_rng(4)
        x3 = rng.standard_normal((1, 12, 40)) * 1e-3
        x3[0, 2] = 1e8
        dy3 = rng.standard_normal(x3.shape)
        y3, dx3 = run_kernels(KC, x3, 3, 3.0, 0.75, 1e-6, dy3)
        eb, eda = oracle(x3, 3, 3.0, 0.75, 1e-6, dy3)
        np.testing.assert_allclose(y3, eb, rtol=1e-11)
        np.testing.assert_allclose(dx3, eda, rtol=1e-9, atol=1e-12 * np.abs(eda).max())

    def test_large_offset_float32_keeps_precision(self):
        rng = np.random.default_rng(5)
        x3 = (1e4 + rng.standard_normal((2, 20, 50))).astype(np.float32)
        y3, dx3 = run_kernels(KC, x3, 5, 1e-4, 0.75, 2.0, np.ones_like(x3))
        eb, eda = oracle(x3, 5, 1e-4, 0.75, 2.0, np.ones_like(x3))
        np.testing.assert_allclose(y3, eb, rtol=1e-5)
        np.testing.assert_allclose(dx3, eda, rtol=1e-4, atol=1e-6 * np.abs(eda).max())

    def test_small_tiles_and_size_larger_than_channels(self, monkeypatch):
        monkeypatch.setattr(KC, "FORWARD_TILE", 16)
        monkeypatch.setattr(KC, "MIN_TILE", 8)
        monkeypatch.setattr(KC, "MAX_TILE", 8)
        rng = np.random.default_rng(6)
        x3 = rng.standard_normal((2, 3, 37))
        dy3 = rng.standard_normal(x3.shape)
        for size in (1, 2, 9):
            y3, dx3 = run_kernels(KC, x3, size, 1.0, 0.75, 1.0, dy3)
            eb, eda = oracle(x3, size, 1.0, 0.75, 1.0, dy3)
            np.testing.assert_allclose(y3, eb, rtol=1e-12)
            np.testing.assert_allclose(dx3, eda, rtol=1e-10, atol=1e-13)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda.is_available(), reason="no CUDA device or simulator")
class TestCudaKernels:
    """CUDA kernels against the CPU kernels (simulator unless NUMBA_ENABLE_CUDASIM=0)."""

    @pytest.mark.parametrize("threads", [32, 64])
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    @pytest.mark.parametrize("shape, size, beta", [((2, 19, 20), 5, 0.75), ((3, 4, 13), 2, 0.5),
                                                   ((1, 6, 40), 3, 0.6)])
    def test_matches_cpu(self, shape, size, beta, dtype, threads):
        rng = np.random.default_rng(7)
        x3 = rng.standard_normal(shape).astype(dtype)
        dy3 = rng.standard_normal(shape).astype(dtype)
        save = KC.beta_mode(beta) == KC.MODE_POW
        ref = run_kernels(KC, x3, size, 0.7, beta, 1.0, dy3, save)
        got = run_kernels(KG, x3, size, 0.7, beta, 1.0, dy3, save, threads=threads)
        t = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
        for g, r in zip(got, ref):
            assert g.dtype == r.dtype
            np.testing.assert_allclose(g, r, **t)

    def test_nan_stays_inside_its_window(self):
        x3 = np.random.default_rng(8).standard_normal((1, 20, 3))
        x3[0, 15, 1] = np.nan
        ref = run_kernels(KC, x3, 3, 0.5, 0.75, 1.0, np.ones_like(x3))
        got = run_kernels(KG, x3, 3, 0.5, 0.75, 1.0, np.ones_like(x3), threads=32)
        for g, r in zip(got, ref):
            np.testing.assert_array_equal(np.isnan(g), np.isnan(r))
            np.testing.assert_allclose(g, r, rtol=1e-12)
