"""Group normalization CUDA kernels against the CPU kernels (simulator unless NUMBA_ENABLE_CUDASIM=0).

tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1 before numba is imported; the
simulator runs a Python thread per CUDA thread, so blocks and shapes are tiny.
"""
import numpy as np
import pytest
from numba import cuda

import tinynorm.kernels.cpu.group_norm as KC
import tinynorm.kernels.cuda.group_norm as KG

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not cuda.is_available(), reason="no CUDA device or simulator")]

# (N, G, K, S): GroupNorm (per-channel slots), LayerNorm (S == 1), InstanceNorm (K == 1);
# rows longer than the block (M = 70 > 64) and shorter; the three slot layouts (S == 1 with
# one and with several groups, planes S >= 32 with several slots, S // slot otherwise); rows of
# 300 run the four-loads-in-flight loops at 32 and 64 threads
SHAPES = [(2, 2, 2, 5), (3, 1, 9, 1), (2, 1, 1, 70), (2, 3, 4, 1), (2, 2, 3, 33), (2, 1, 300, 1),
          (1, 1, 1, 300)]
DTYPES = [np.float32, np.float64]


def tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)


def run(mod, x4, dy4, w, b, **kw):
    N, G, K, _ = x4.shape
    y4, dx4 = np.empty_like(x4), np.empty_like(x4)
    mean, rstd = np.empty((N, G)), np.empty((N, G))
    dw, db = np.empty(G * K), np.empty(G * K)
    mod.gn_forward(x4, w, b, 1e-5, y4, mean, rstd, **kw)
    mod.gn_backward(dy4, x4, w, mean, rstd, dx4, dw, db, **kw)
    return y4, mean, rstd, dx4, dw, db


@pytest.mark.parametrize("threads", [32, 64])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_cuda_matches_cpu(shape, dtype, threads):
    rng = np.random.default_rng(0)
    x4 = (2.0 + rng.standard_normal(shape)).astype(dtype)
    dy4 = rng.standard_normal(shape).astype(dtype)
    gk = shape[1] * shape[2]
    w, b = rng.uniform(0.5, 2, gk), rng.standard_normal(gk)
    ref = run(KC, x4, dy4, w, b)
    got = run(KG, x4, dy4, w, b, threads=threads)
    names = ["y", "mean", "rstd", "dx", "dweight", "dbias"]
    for name, g, r in zip(names, got, ref):
        assert g.dtype == r.dtype, name
        t = tol(dtype) if name in ("y", "dx") else dict(rtol=1e-12, atol=1e-12)
        if name in ("dweight", "dbias") and dtype == np.float32 and shape[1] == 1 and shape[3] == 1:
            t = tol(dtype)  # the CPU's LayerNorm sums float32 terms (float32 rounding)
        np.testing.assert_allclose(g, r, err_msg=name, **t)


def test_cuda_device_arrays_in_place_and_optional_outputs():
    rng = np.random.default_rng(1)
    shape = (3, 2, 2, 9)
    x4 = rng.standard_normal(shape).astype(np.float32)
    dy4 = rng.standard_normal(shape).astype(np.float32)
    ref = run(KC, x4, dy4, None, None)
    d_x, d_dy = cuda.to_device(x4), cuda.to_device(dy4)
    d_y = cuda.device_array(shape, np.float32)
    d_mean, d_rstd = (cuda.device_array((3, 2), np.float64) for _ in range(2))
    KG.gn_forward(d_x, None, None, 1e-5, d_y, d_mean, d_rstd, threads=32)
    np.testing.assert_allclose(d_y.copy_to_host(), ref[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d_mean.copy_to_host(), ref[1], rtol=1e-12, atol=1e-12)
    d_dx = cuda.device_array(shape, np.float32)
    KG.gn_backward(d_dy, d_x, None, d_mean, d_rstd, d_dx, None, None, threads=32)
    np.testing.assert_allclose(d_dx.copy_to_host(), ref[3], rtol=1e-5, atol=1e-5)
    db = np.empty(4)
    KG.gn_backward(dy4, x4, None, ref[1], ref[2], None, None, db, threads=32)
    np.testing.assert_allclose(db, ref[5], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 4, 1), (2, 2, 3, 33), (3, 2, 2, 9)])
def test_cuda_parameter_gradients_without_dx(shape):
    """Without dx the per-slot sums come from the plane-sums kernel (or the column kernel)."""
    rng = np.random.default_rng(4)
    x4 = rng.standard_normal(shape)
    dy4 = rng.standard_normal(shape)
    w = rng.uniform(0.5, 2, shape[1] * shape[2])
    ref = run(KC, x4, dy4, w, None)
    dw, db = np.empty(w.size), np.empty(w.size)
    KG.gn_backward(dy4, x4, w, ref[1], ref[2], None, dw, db, threads=32)
    np.testing.assert_allclose(dw, ref[4], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, ref[5], rtol=1e-12, atol=1e-12)


def test_cuda_stats_stable_far_from_zero():
    x4 = (1e4 + np.random.default_rng(2).standard_normal((2, 2, 3, 13))).astype(np.float32)
    mean, rstd = np.empty((2, 2)), np.empty((2, 2))
    KG.gn_forward(x4, None, None, 1e-5, np.empty_like(x4), mean, rstd, threads=32)
    ref = x4.astype(np.float64).reshape(2, 2, -1).var(axis=2)
    assert np.max(np.abs((1 / rstd ** 2 - 1e-5) / ref - 1)) < 1e-6


def test_cuda_nan_propagates_to_its_row():
    x4 = np.random.default_rng(3).standard_normal((2, 2, 1, 5))
    x4[1, 0, 0, 4] = np.nan
    y4, mean, rstd = np.empty_like(x4), np.empty((2, 2)), np.empty((2, 2))
    KG.gn_forward(x4, None, None, 1e-5, y4, mean, rstd, threads=32)
    assert np.isnan(mean[1, 0]) and np.all(np.isnan(y4[1, 0]))
    assert np.isfinite(y4).sum() == y4.size - 5


def test_cuda_empty_rows_and_bad_threads():
    x4 = np.zeros((2, 2, 0, 3), dtype=np.float32)
    mean, rstd = np.zeros((2, 2)), np.zeros((2, 2))
    KG.gn_forward(x4, None, None, 1e-5, np.empty_like(x4), mean, rstd, threads=32)
    assert np.all(np.isnan(mean)) and np.all(np.isnan(rstd))
    with pytest.raises(AssertionError):
        KG.gn_forward(np.zeros((2, 2, 1, 3)), None, None, 1e-5, np.zeros((2, 2, 1, 3)),
                      np.zeros((2, 2)), np.zeros((2, 2)), threads=48)


def test_cuda_dx_keeps_the_float64_mean_when_it_cancels():
    """Two float32 values near -50: dx cancels, and a mean rounded to float32 would show."""
    x4 = np.array([-49.87427, -50.132103], np.float32).reshape(1, 1, 1, 2)
    dy4 = np.array([0.3, -1.1], np.float32).reshape(x4.shape)
    w, b = np.array([1.3]), np.array([0.0])
    exact = run(KC, x4.astype(np.float64), dy4.astype(np.float64), w, b)[3]
    got = run(KG, x4, dy4, w, b, threads=32)[3]
    scale = np.abs(exact).max() + 8 * np.abs(dy4).max() * 1.3
    np.testing.assert_allclose(got, exact, rtol=0, atol=4e-7 * scale)


@pytest.mark.parametrize("centered", [True, False])
def test_cuda_column_sums_over_several_row_chunks(centered):
    """dgamma of LayerNorm / RMSNorm: column sums over chunks of 16 rows, added in order."""
    rng = np.random.default_rng(6)
    R, G, K = 40, 2, 3
    x, dy = rng.standard_normal((R, G * K)), rng.standard_normal((R, G * K))
    mean, rstd = rng.standard_normal((R, G)), rng.uniform(0.5, 2, (R, G))
    stat = lambda a: np.repeat(a, K, axis=1)  # noqa: E731
    xc = x - stat(mean) if centered else x
    out_a, out_b = cuda.device_array(G * K), cuda.device_array(G * K)
    KG.column_sums(cuda.to_device(dy.ravel()), cuda.to_device(x.ravel()), R, G, K,
                   cuda.to_device(mean.ravel()) if centered else None,
                   cuda.to_device(rstd.ravel()), out_a, out_b, 32)
    np.testing.assert_allclose(out_a.copy_to_host(), (dy * xc * stat(rstd)).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(out_b.copy_to_host(), dy.sum(axis=0), rtol=1e-12, atol=1e-12)
