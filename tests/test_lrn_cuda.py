"""LRN CUDA kernels against the CPU kernels (simulator unless NUMBA_ENABLE_CUDASIM=0)."""
import numpy as np
import pytest
from numba import cuda

import tinynorm.kernels.cpu.lrn as KC
import tinynorm.kernels.cuda.lrn as KG

from oracles.lrn import run_kernels

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not cuda.is_available(), reason="no CUDA device or simulator")]


@pytest.mark.parametrize("threads", [32, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, size, beta", [((2, 19, 20), 5, 0.75), ((3, 4, 13), 2, 0.5),
                                               ((1, 6, 40), 3, 0.6)])
def test_matches_cpu(shape, size, beta, dtype, threads):
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


def test_nan_stays_inside_its_window():
    x3 = np.random.default_rng(8).standard_normal((1, 20, 3))
    x3[0, 15, 1] = np.nan
    ref = run_kernels(KC, x3, 3, 0.5, 0.75, 1.0, np.ones_like(x3))
    got = run_kernels(KG, x3, 3, 0.5, 0.75, 1.0, np.ones_like(x3), threads=32)
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r))
        np.testing.assert_allclose(g, r, rtol=1e-12)
