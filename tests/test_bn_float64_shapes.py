"""BatchNorm and BatchRenorm forward in float64 on odd shapes against a naive loop oracle.

The CPU statistics kernels split work into heads and tails (rows four at a time, then the
rest; segments of SEGMENT values; tiles of TILE_COLS columns; per-thread runs above
PARALLEL_MIN_ELEMENTS). These shapes put a remainder in each, so a tail loop that skipped or
double-counted values would show in the mean.
"""
import numpy as np
import pytest

import tinynorm as tn
from tinynorm import functional as F
from tinynorm.kernels.cpu import batch_norm as k

SHAPES = [(1, 3, 3), (2, 3, 1), (3, 5, 7), (5, 2, 1), (7, 3, 31), (9, 2, 33), (13, 1, 127),
          (17, 2, 129), (2, 1, k.SEGMENT + 3), (3, 2, 2 * k.SEGMENT - 1), (9, k.TILE_COLS + 1, 1),
          (11, 3, 47), (33, 1, 49), (6, 7, 1031), (5, 3, 3001)]


def naive(x):
    """Per-channel mean and biased variance by explicit loops in float64."""
    n, c, s = x.shape
    mean, var = np.zeros(c), np.zeros(c)
    for j in range(c):
        total = 0.0
        for i in range(n):
            for t in range(s):
                total += float(x[i, j, t])
        mean[j] = total / (n * s)
        sq = 0.0
        for i in range(n):
            for t in range(s):
                sq += (float(x[i, j, t]) - mean[j]) ** 2
        var[j] = sq / (n * s)
    return mean, var


@pytest.mark.parametrize("shape", SHAPES)
def test_float64_forward_matches_the_loop_oracle(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape) * 3.0 + 7.0
    mean, var = naive(x)
    count, kmean, m2 = (np.empty(shape[1]) for _ in range(3))
    k.bn_stats(x, count, kmean, m2)
    np.testing.assert_array_equal(count, shape[0] * shape[2])
    np.testing.assert_allclose(kmean, mean, rtol=1e-13, atol=0)
    np.testing.assert_allclose(m2 / count, var, rtol=1e-11, atol=0)
    expected = (x - mean[None, :, None]) / np.sqrt(var[None, :, None] + 1e-5)
    y = F.batch_norm(tn.tensor(x), None, None, training=True).numpy()
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12)
    rm, rs = tn.zeros(shape[1], dtype=np.float64), tn.ones(shape[1], dtype=np.float64)
    yr = F.batch_renorm(tn.tensor(x), rm, rs, training=True, rmax=3.0, dmax=5.0).numpy()
    sigma = np.sqrt(var + 1e-5)
    r = np.clip(sigma, 1 / 3.0, 3.0)
    d = np.clip(mean, -5.0, 5.0)
    np.testing.assert_allclose(yr, expected * r[None, :, None] + d[None, :, None], rtol=0,
                               atol=1e-11)
