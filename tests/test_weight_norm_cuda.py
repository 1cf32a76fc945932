"""Weight normalization CUDA kernels against the CPU kernels and float64 sums (simulator unless NUMBA_ENABLE_CUDASIM=0)."""
import math

import numpy as np
import pytest

import tinynorm.kernels.cpu.weight_norm as KC


@pytest.mark.cuda
@pytest.mark.parametrize("threads", [32, 64])
@pytest.mark.parametrize("shape,dtype", [((1, 3, 40), np.float32), ((5, 2, 3), np.float64),
                                         ((1, 1, 70), np.float64)])
def test_cuda_kernels_match_cpu_and_oracle(shape, dtype, threads):
    from numba import cuda
    if not cuda.is_available():
        pytest.skip("no CUDA device or simulator")
    import tinynorm.kernels.cuda.weight_norm as KG
    rng = np.random.default_rng(9)
    v = (rng.standard_normal(shape) + 1).astype(dtype)
    gw = rng.standard_normal(shape).astype(dtype)
    D = shape[1]
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-6)
    ref, got = np.empty(D), np.empty(D)
    KC.wn_sum_sq(v, ref)
    KG.wn_sum_sq(v, got, threads=threads)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    np.testing.assert_allclose(got, [math.fsum((v[:, d].astype(np.float64) ** 2).ravel())
                                     for d in range(D)], rtol=1e-12)
    KC.wn_dot(gw, v, ref)
    KG.wn_dot(gw, v, got, threads=threads)
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-11)
    s, b = rng.standard_normal(D), rng.standard_normal(D)
    w_ref, w = np.empty_like(v), np.empty_like(v)
    KC.wn_scale(v, s, w_ref)
    KG.wn_scale(v, s, w, threads=threads)
    assert w.dtype == dtype
    np.testing.assert_allclose(w, w_ref, **tol)
    KC.wn_backward_apply(gw, v, s, b, w_ref)
    KG.wn_backward_apply(gw, v, s, b, w, threads=threads)
    np.testing.assert_allclose(w, w_ref, **tol)
