"""RMSNorm: a naive float64 loop oracle, gradients, torch parity, kernels (serial/parallel, CUDA), errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numba import cuda

import tinynorm as tn
import tinynorm.kernels.cpu.rms_norm as KC
import tinynorm.kernels.cuda.rms_norm as KG
from tinynorm.nn.rms_norm import RMSNorm
from tinynorm.ops.rms_norm import rms_norm
from tinynorm.testing import check_op, hard_arrays, normal_arrays

FAST = settings(max_examples=15, deadline=None)


# ---- the oracle: explicit loops from NORMS.md -------------------------------------

def oracle(x, k, weight, eps, dy=None):
    """y (and dx, dw when dy is given) of RMSNorm over the last k axes, row by row."""
    x = np.asarray(x, np.float64)
    D = int(np.prod(x.shape[x.ndim - k:]))
    x2 = x.reshape(-1, D)
    w = np.ones(D) if weight is None else np.asarray(weight, np.float64).reshape(D)
    y2, dx2, dw = np.empty_like(x2), np.empty_like(x2), np.zeros(D)
    g2 = None if dy is None else np.asarray(dy, np.float64).reshape(x2.shape)
    for r in range(x2.shape[0]):
        ms = sum(v * v for v in x2[r]) / D
        inv = 1.0 / np.sqrt(ms + eps)
        for j in range(D):
            y2[r, j] = x2[r, j] * inv * w[j]
        if g2 is not None:
            s = sum(g2[r, j] * w[j] * x2[r, j] for j in range(D))
            for j in range(D):
                dx2[r, j] = inv * (w[j] * g2[r, j] - x2[r, j] * inv * inv * s / D)
                dw[j] += g2[r, j] * x2[r, j] * inv
    if dy is None:
        return y2.reshape(x.shape)
    return y2.reshape(x.shape), dx2.reshape(x.shape), dw.reshape(np.shape(weight) or (D,))


def cases():
    """(shape, k): input shape and number of normalized trailing axes."""
    return st.tuples(st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple),
                     st.integers(1, 2)).filter(lambda c: c[1] <= len(c[0]))


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


# ---- op and module against the oracle -------------------------------------------------

@FAST
@given(cases(), st.integers(0, 2**31), st.sampled_from([np.float32, np.float64]), st.booleans())
def test_forward_backward_match_oracle(case, seed, dtype, affine):
    shape, k = case
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    ns = shape[len(shape) - k:]
    w = rng.uniform(0.5, 2, ns).astype(dtype) if affine else None
    xt = tn.tensor(x, requires_grad=True)
    wt = tn.tensor(w, requires_grad=True) if affine else None
    y = rms_norm(xt, ns, wt, eps=1e-5)
    y.backward(dy)
    ey, edx, edw = oracle(x, k, w, 1e-5, dy)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y.numpy(), ey, **tol(dtype))
    np.testing.assert_allclose(xt.grad.numpy(), edx, **tol(dtype))
    if affine:
        np.testing.assert_allclose(wt.grad.numpy(), edw, **tol(dtype))


def test_check_op_against_the_oracle_on_hard_inputs():
    """Forward against the loop oracle, finite differences of x and weight, float32 against
    float64, on constant rows, large offsets, tiny/huge scales and planted NaN/Inf."""
    def case(c):
        shape, k = c
        ns = shape[len(shape) - k:]
        w = st.one_of(st.none(), normal_arrays(ns).map(lambda a: 0.5 + np.abs(a)))
        return st.tuples(hard_arrays(shape, tuple(range(-k, 0)), nonfinite=True), w, st.just(k))
    report = check_op(lambda x, w, k: rms_norm(x, tuple(x.shape[x.ndim - k:]), w, eps=1e-3),
                      lambda x, w, k: oracle(x, k, w, 1e-3), cases().flatmap(case),
                      max_examples=30)
    assert report.nonfinite_cases > 0


def test_eps_none_is_dtype_machine_epsilon():
    x32 = np.full((2, 3), 1e-4, np.float32)
    got = rms_norm(tn.tensor(x32), 3).numpy()
    np.testing.assert_allclose(got, oracle(x32, 1, None, float(np.finfo(np.float32).eps)),
                               rtol=1e-6)
    assert not np.allclose(got, oracle(x32, 1, None, 1e-5), rtol=1e-3)
    x64 = np.full((2, 3), 1e-9)
    np.testing.assert_allclose(rms_norm(tn.tensor(x64), (3,)).numpy(),
                               oracle(x64, 1, None, float(np.finfo(np.float64).eps)), rtol=1e-12)


def test_module_parameters_state_dict_and_forward():
    m = RMSNorm((3, 4), dtype=np.float64)
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    assert list(m.state_dict()) == ["weight"]
    assert m.weight.shape == (3, 4) and np.all(m.weight.numpy() == 1)
    rng = np.random.default_rng(0)
    m.weight.data[...] = rng.uniform(0.5, 2, (3, 4))
    x = rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(m(tn.tensor(x)).numpy(),
                               oracle(x, 2, m.weight.numpy(), np.finfo(np.float64).eps),
                               rtol=1e-12)
    bare = RMSNorm(4, eps=1e-3, elementwise_affine=False)
    assert list(bare.parameters()) == [] and bare.weight is None
    assert "eps=0.001" in repr(bare) and "elementwise_affine=False" in repr(bare)


@pytest.mark.parametrize("bad, match", [
    (dict(x=np.zeros((2, 3)), ns=(4,)), "normalized_shape"),
    (dict(x=np.zeros((3,)), ns=(2, 3)), "normalized_shape"),
    (dict(x=np.zeros((2, 3)), ns=(3,), w=np.ones(4)), "weight has shape"),
    (dict(x=np.zeros((2, 3), np.int64), ns=(3,)), "dtype int64"),
    (dict(x=np.zeros((2, 3), np.float16), ns=(3,)), "dtype float16"),
    (dict(x=np.zeros((2, 3)), ns=(3,), eps=-1.0), "eps"),
    (dict(x=np.zeros((2, 3)), ns="abc"), "normalized_shape"),
])
def test_errors_name_the_problem(bad, match):
    w = bad.get("w")
    with pytest.raises(ValueError, match=match):
        rms_norm(tn.tensor(bad["x"]), bad["ns"], None if w is None else tn.tensor(w),
                 eps=bad.get("eps"))


# ---- torch parity ---------------------------------------------------------------------

@settings(max_examples=10, deadline=None)
@given(cases(), st.integers(0, 2**31), st.sampled_from([None, 1e-5]))
def test_matches_torch_float32(case, seed, eps):
    torch = pytest.importorskip("torch")
    shape, k = case
    ns = shape[len(shape) - k:]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.uniform(0.5, 2, ns).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    xt, wt = tn.tensor(x, requires_grad=True), tn.tensor(w, requires_grad=True)
    y = rms_norm(xt, ns, wt, eps)
    y.backward(dy)
    X, W = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    Y = torch.nn.functional.rms_norm(X, ns, W, eps)
    Y.backward(torch.tensor(dy))
    t = dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y.numpy(), Y.detach().numpy(), **t)
    np.testing.assert_allclose(xt.grad.numpy(), X.grad.numpy(), **t)
    np.testing.assert_allclose(wt.grad.numpy(), W.grad.numpy(), **t)


# ---- kernels ----------------------------------------------------------------------------

def run_kernels(K, x2, w, dy2, eps=1e-5, **kw):
    R, D = x2.shape
    y2, dx2, rstd, dw = np.empty_like(x2), np.empty_like(x2), np.empty(R), np.empty(D)
    K.rms_forward(x2, w, eps, y2, rstd, **kw)
    K.rms_backward(dy2, x2, w, rstd, dx2, None if w is None else dw, **kw)
    return y2, rstd, dx2, (None if w is None else dw)


class TestCpuKernels:
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_serial_and_parallel_paths_agree_with_oracle(self, dtype, monkeypatch):
        rng = np.random.default_rng(1)
        x2 = rng.standard_normal((67, 513)).astype(dtype)
        assert x2.size >= KC.PARALLEL_MIN_ELEMENTS
        dy2 = rng.standard_normal(x2.shape).astype(dtype)
        w = rng.uniform(0.5, 2, 513).astype(dtype)
        par = run_kernels(KC, x2, w, dy2)
        monkeypatch.setattr(KC, "PARALLEL_MIN_ELEMENTS", 1 << 40)
        ser = run_kernels(KC, x2, w, dy2)
        ey, edx, edw = oracle(x2, 1, w, 1e-5, dy2)
        for got in (par, ser):
            assert got[0].dtype == dtype and got[2].dtype == dtype
            np.testing.assert_allclose(got[0], ey, **tol(dtype))
            np.testing.assert_allclose(got[2], edx, **tol(dtype))
            np.testing.assert_allclose(got[3], edw, rtol=1e-4 if dtype == np.float32 else 1e-10)
        np.testing.assert_allclose(par[1], ser[1], rtol=1e-14)

    def test_nan_stays_in_its_row_and_zero_rows_are_finite(self):
        x2 = np.ones((4, 6), np.float32)
        x2[1, 2] = np.nan
        x2[3] = 0.0
        y2, rstd, dx2, dw = run_kernels(KC, x2, np.ones(6, np.float32), np.ones_like(x2))
        assert np.all(np.isnan(y2[1])) and np.all(np.isnan(dx2[1])) and np.all(np.isnan(dw))
        for r in (0, 2, 3):
            assert np.all(np.isfinite(y2[r])) and np.all(np.isfinite(dx2[r]))
        assert np.all(y2[3] == 0)

    def test_large_offset_float32_keeps_precision(self):
        rng = np.random.default_rng(2)
        x2 = (1e4 + rng.standard_normal((8, 4096))).astype(np.float32)
        y2, rstd, _, _ = run_kernels(KC, x2, None, np.ones_like(x2))
        np.testing.assert_allclose(rstd, 1 / np.sqrt((x2.astype(np.float64) ** 2).mean(1) + 1e-5),
                                   rtol=1e-12)
        np.testing.assert_allclose(y2, oracle(x2, 1, None, 1e-5), rtol=2e-7)

    def test_dw_only_and_empty_rows(self):
        rng = np.random.default_rng(3)
        x2 = rng.standard_normal((3, 5))
        dy2 = rng.standard_normal((3, 5))
        w = rng.uniform(0.5, 2, 5)
        rstd, dw = np.empty(3), np.empty(5)
        KC.rms_forward(x2, w, 1e-5, np.empty_like(x2), rstd)
        KC.rms_backward(dy2, x2, w, rstd, None, dw)
        np.testing.assert_allclose(dw, oracle(x2, 1, w, 1e-5, dy2)[2], rtol=1e-12)
        e = np.empty((0, 5))
        dw0 = np.full(5, 7.0)
        KC.rms_forward(e, None, 1e-5, np.empty_like(e), np.empty(0))
        KC.rms_backward(e, e, w, np.empty(0), np.empty_like(e), dw0)
        assert np.all(dw0 == 0)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda.is_available(), reason="no CUDA device or simulator")
class TestCudaKernels:
    """CUDA kernels against the CPU kernels (simulator unless NUMBA_ENABLE_CUDASIM=0)."""

    @pytest.mark.parametrize("threads", [32, 64])
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    @pytest.mark.parametrize("shape, affine", [((3, 70), True), ((2, 5), False)])
    def test_matches_cpu(self, shape, affine, dtype, threads):
        rng = np.random.default_rng(4)
        x2 = rng.standard_normal(shape).astype(dtype)
        dy2 = rng.standard_normal(shape).astype(dtype)
        w = rng.uniform(0.5, 2, shape[1]).astype(dtype) if affine else None
        ref = run_kernels(KC, x2, w, dy2)
        got = run_kernels(KG, x2, w, dy2, threads=threads)
        t = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-6)
        for g, r in zip(got, ref):
            if r is not None:
                assert g.dtype == r.dtype
                np.testing.assert_allclose(g, r, **t)

    def test_device_arrays_in_place(self):
        rng = np.random.default_rng(5)
        x2 = rng.standard_normal((2, 33)).astype(np.float32)
        d_y = cuda.device_array(x2.shape, np.float32)
        d_r = cuda.device_array(2, np.float64)
        KG.rms_forward(cuda.to_device(x2), None, 1e-5, d_y, d_r, threads=32)
        ref = run_kernels(KC, x2, None, x2)
        np.testing.assert_allclose(d_y.copy_to_host(), ref[0], rtol=1e-6)
        np.testing.assert_allclose(d_r.copy_to_host(), ref[1], rtol=1e-12)
