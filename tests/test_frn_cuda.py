"""FRN CUDA kernels against the CPU kernels (simulator unless NUMBA_ENABLE_CUDASIM=0)."""
import numpy as np
import pytest
from numba import cuda

import tinynorm.kernels.cpu.frn as KC
import tinynorm.kernels.cuda.frn as KG

from oracles.frn import params, run_kernels

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not cuda.is_available(), reason="no CUDA device or simulator")]


@pytest.mark.parametrize("threads", [32, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, with_tau", [((2, 2, 70), True), ((3, 1, 1), False)])
def test_matches_cpu(shape, with_tau, dtype, threads):
    rng = np.random.default_rng(6)
    x3 = rng.standard_normal(shape).astype(dtype)
    dz3 = rng.standard_normal(shape).astype(dtype)
    C = shape[1]
    g, b, t = params(rng, C)
    t = t if with_tau else None
    eps = np.full(C, 1e-3)
    ref = run_kernels(KC, x3, g, b, t, eps, dz3)
    got = run_kernels(KG, x3, g, b, t, eps, dz3, threads=threads)
    tl = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-6)
    for a, r in zip(got, ref):
        assert a.dtype == r.dtype
        np.testing.assert_allclose(a, r, **tl)
