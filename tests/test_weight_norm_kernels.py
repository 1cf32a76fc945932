"""Weight normalization CPU kernels (tinynorm.kernels.cpu.weight_norm) against float64 sums: serial and parallel paths, float32/float64."""
import math

import numpy as np
import pytest

import tinynorm.kernels.cpu.weight_norm as KC

DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("shape,dim", [((1, 5, 7000), 1),       # planes, parallel
                                       ((1, 1, 40000), 1),      # dim=None-like, one plane split
                                       ((2200, 5, 3), 1),       # columns, parallel
                                       ((9000, 4, 1), 1),       # columns, B == 1
                                       ((3, 4, 40), 1),         # planes, serial
                                       ((6, 3, 2), 1)])         # columns, serial
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_serial_and_parallel_paths(shape, dim, dtype):
    rng = np.random.default_rng(2)
    v = (rng.standard_normal(shape) + 0.5).astype(dtype)
    gw = rng.standard_normal(shape).astype(dtype)
    A, D, B = shape
    ref_sq = np.array([math.fsum((v[:, d, :].astype(np.float64) ** 2).ravel()) for d in range(D)])
    ref_dot = np.array([math.fsum((gw[:, d, :].astype(np.float64) * v[:, d, :]).ravel())
                        for d in range(D)])
    out = np.empty(D)
    KC.wn_sum_sq(v, out)
    np.testing.assert_allclose(out, ref_sq, rtol=1e-12)
    KC.wn_dot(gw, v, out)
    np.testing.assert_allclose(out, ref_dot, rtol=1e-10, atol=1e-9)
    s, b = rng.standard_normal(D), rng.standard_normal(D)
    w = np.empty_like(v)
    KC.wn_scale(v, s, w)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-14)
    for d in range(D):
        np.testing.assert_allclose(w[:, d, :], v[:, d, :].astype(np.float64) * s[d], **tol)
    gv = np.empty_like(v)
    KC.wn_backward_apply(gw, v, s, b, gv)
    for d in range(D):
        ref = gw[:, d, :].astype(np.float64) * s[d] - v[:, d, :].astype(np.float64) * b[d]
        np.testing.assert_allclose(gv[:, d, :], ref, **tol)


def test_parallel_paths_are_taken(monkeypatch):
    """Above the threshold the host wrappers call the prange dispatchers."""
    called = []
    for name in ("_dot_planes_parallel", "_dot_columns_parallel", "_scale_planes_parallel"):
        orig = getattr(KC, name)
        monkeypatch.setattr(KC, name, lambda *a, _o=orig, _n=name: (called.append(_n), _o(*a))[1])
    v = np.ones((1, 2, KC.PARALLEL_MIN_ELEMENTS))
    KC.wn_sum_sq(v, np.empty(2))
    KC.wn_scale(v, np.ones(2), np.empty_like(v))
    KC.wn_sum_sq(np.ones((KC.PARALLEL_MIN_ELEMENTS, 2, 1)), np.empty(2))
    assert called == ["_dot_planes_parallel", "_scale_planes_parallel", "_dot_columns_parallel"]
