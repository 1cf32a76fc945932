"""RMSNorm CUDA kernels against the CPU kernels (simulator unless NUMBA_ENABLE_CUDASIM=0)."""
import numpy as np
import pytest
from numba import cuda

import tinynorm.kernels.cpu.rms_norm as KC
import tinynorm.kernels.cuda.rms_norm as KG

from oracles.rms_norm import run_kernels

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not cuda.is_available(), reason="no CUDA device or simulator")]


@pytest.mark.parametrize("threads", [32, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, affine", [((3, 70), True), ((2, 5), False)])
def test_matches_cpu(shape, affine, dtype, threads):
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


def test_device_arrays_in_place():
    rng = np.random.default_rng(5)
    x2 = rng.standard_normal((2, 33)).astype(np.float32)
    d_y = cuda.device_array(x2.shape, np.float32)
    d_r = cuda.device_array(2, np.float64)
    KG.rms_forward(cuda.to_device(x2), None, 1e-5, d_y, d_r, threads=32)
    ref = run_kernels(KC, x2, None, x2)
    np.testing.assert_allclose(d_y.copy_to_host(), ref[0], rtol=1e-6)
    np.testing.assert_allclose(d_r.copy_to_host(), ref[1], rtol=1e-12)
