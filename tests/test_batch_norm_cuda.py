"""BatchNorm CUDA kernels against the CPU kernels (simulator unless NUMBA_ENABLE_CUDASIM=0).

tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1 before numba is imported; the
simulator runs a Python thread per CUDA thread, so blocks and shapes are tiny.
"""
import numpy as np
import pytest
from numba import cuda

import tinynorm.kernels.cpu.batch_norm as KC
import tinynorm.kernels.cuda.batch_norm as KG

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not cuda.is_available(), reason="no CUDA device or simulator")]

# planes of S >= 32 take the split-channel kernels; S = 300 runs their four-loads loops
SHAPES = [(3, 5, 7), (4, 3, 1), (2, 2, 33), (3, 2, 300)]
DTYPES = [np.float32, np.float64]


def vecs(C, k):
    return [np.empty(C) for _ in range(k)]


def tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("threads", [32, 64])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_cuda_matches_cpu(shape, dtype, threads):
    rng = np.random.default_rng(0)
    N, C, S = shape
    x3 = (2.0 + rng.standard_normal(shape)).astype(dtype)
    dy3 = rng.standard_normal(shape).astype(dtype)

    ref, got = vecs(C, 3), vecs(C, 3)
    KC.bn_stats(x3, *ref)
    KG.bn_stats(x3, *got, threads=threads)
    np.testing.assert_array_equal(got[0], ref[0])
    for g, r in zip(got[1:], ref[1:]):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)
    mean = ref[1]

    scale, shift = rng.standard_normal(C), rng.standard_normal(C)
    y_ref, y = np.empty_like(x3), np.empty_like(x3)
    KC.bn_forward_apply(x3, mean, scale, shift, y_ref)
    KG.bn_forward_apply(x3, mean, scale, shift, y, threads=threads)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, y_ref, **tol(dtype))

    ref, got = vecs(C, 2), vecs(C, 2)
    KC.bn_backward_reduce(dy3, x3, mean, *ref)
    KG.bn_backward_reduce(dy3, x3, mean, *got, threads=threads)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)

    mean_dy, k, g = (rng.standard_normal(C) for _ in range(3))
    dx_ref, dx = np.empty_like(x3), np.empty_like(x3)
    KC.bn_backward_apply(dy3, x3, mean, mean_dy, k, g, dx_ref)
    KG.bn_backward_apply(dy3, x3, mean, mean_dy, k, g, dx, threads=threads)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, dx_ref, **tol(dtype))


def test_cuda_device_arrays_in_place():
    """Device arrays are used in place; results stay on the device until copied."""
    rng = np.random.default_rng(1)
    x3 = rng.standard_normal((3, 4, 9)).astype(np.float32)
    C = 4
    dx = cuda.to_device(x3)
    d_count, d_mean, d_m2 = (cuda.device_array(C, np.float64) for _ in range(3))
    KG.bn_stats(dx, d_count, d_mean, d_m2, threads=32)
    ref = vecs(C, 3)
    KC.bn_stats(x3, *ref)
    np.testing.assert_allclose(d_mean.copy_to_host(), ref[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d_m2.copy_to_host(), ref[2], rtol=1e-12)

    d_y = cuda.device_array(x3.shape, np.float32)
    KG.bn_forward_apply(dx, d_mean, cuda.to_device(np.ones(C)), cuda.to_device(np.zeros(C)), d_y,
                        threads=32)
    y_ref = np.empty_like(x3)
    KC.bn_forward_apply(x3, ref[1], np.ones(C), np.zeros(C), y_ref)
    np.testing.assert_allclose(d_y.copy_to_host(), y_ref, rtol=1e-6, atol=1e-6)


def test_cuda_stats_stable_far_from_zero():
    x3 = (1e4 + np.random.default_rng(2).standard_normal((5, 2, 19))).astype(np.float32)
    count, mean, m2 = vecs(2, 3)
    KG.bn_stats(x3, count, mean, m2, threads=32)
    ref = x3.astype(np.float64).var(axis=(0, 2))
    assert np.max(np.abs(m2 / count / ref - 1)) < 1e-3


def test_cuda_nan_propagates():
    x3 = np.random.default_rng(3).standard_normal((2, 3, 5))
    x3[1, 0, 4] = np.nan
    count, mean, m2 = vecs(3, 3)
    KG.bn_stats(x3, count, mean, m2, threads=32)
    assert np.isnan(mean[0]) and np.isnan(m2[0]) and np.all(np.isfinite(m2[1:]))
    s_dy, s_x = vecs(3, 2)
    KG.bn_backward_reduce(x3, x3, np.zeros(3), s_dy, s_x, threads=32)
    assert np.isnan(s_dy[0]) and np.isnan(s_x[0]) and np.all(np.isfinite(s_dy[1:]))


def test_cuda_empty_channels_and_bad_threads():
    x3 = np.zeros((0, 2, 3), dtype=np.float32)
    count, mean, m2 = (np.full(2, 9.0) for _ in range(3))
    KG.bn_stats(x3, count, mean, m2, threads=32)
    assert np.all(count == 0) and np.all(mean == 0) and np.all(m2 == 0)
    with pytest.raises(AssertionError):
        KG.bn_stats(np.zeros((2, 2, 3)), *vecs(2, 3), threads=48)


def test_cuda_dx_keeps_the_float64_mean_when_it_cancels():
    """Two float32 values near -50 per channel: dx cancels, and a float32-rounded mean would show."""
    x3 = np.array([-49.87427, -50.132103], np.float32).reshape(2, 1, 1)
    dy3 = np.array([0.3, -1.1], np.float32).reshape(2, 1, 1)
    x64, dy64 = x3.astype(np.float64), dy3.astype(np.float64)
    mean = x64.mean(axis=(0, 2))
    invstd = 1 / np.sqrt(x64.var(axis=(0, 2)) + 1e-5)
    mean_dy = dy64.mean(axis=(0, 2))
    k = (dy64 * (x64 - mean)).mean(axis=(0, 2)) * invstd ** 2
    exact = (dy64 - mean_dy - (x64 - mean) * k) * invstd
    got = np.empty_like(x3)
    KG.bn_backward_apply(dy3, x3, mean, mean_dy, k, invstd, got, threads=32)
    np.testing.assert_allclose(got, exact, rtol=0, atol=2e-6 * np.abs(dy3).max() * invstd.max())


def test_cuda_channel_split_over_blocks(monkeypatch):
    """Several blocks per channel, each over several planes: partials then the finish step."""
    monkeypatch.setattr(KG, "TARGET_BLOCKS", 4)
    rng = np.random.default_rng(5)
    x3 = (3.0 + rng.standard_normal((7, 2, 40))).astype(np.float64)
    dy3 = rng.standard_normal(x3.shape)
    assert KG._splits(7, 2) == 2
    ref, got = vecs(2, 3), vecs(2, 3)
    KC.bn_stats(x3, *ref)
    KG.bn_stats(x3, *got, threads=32)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)
    ref2, got2 = vecs(2, 2), vecs(2, 2)
    KC.bn_backward_reduce(dy3, x3, ref[1], *ref2)
    KG.bn_backward_reduce(dy3, x3, ref[1], *got2, threads=32)
    for g, r in zip(got2, ref2):
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)
