"""FRN CPU kernels (tinynorm.kernels.cpu.frn) against the oracle: serial and parallel paths, float32/float64, edge cases."""
import numpy as np
import pytest

import tinynorm.kernels.cpu.frn as KC

from oracles.frn import oracle, params, run_kernels, tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 8, 1100), (3000, 12, 1)])
def test_serial_and_parallel_paths_agree(shape, dtype, monkeypatch):
    rng = np.random.default_rng(3)
    x3 = rng.standard_normal(shape).astype(dtype)
    assert x3.size >= KC.PARALLEL_MIN_ELEMENTS
    dz3 = rng.standard_normal(shape).astype(dtype)
    C = shape[1]
    g, b, t = params(rng, C)
    eps = np.full(C, 1e-3)
    par = run_kernels(KC, x3, g, b, t, eps, dz3)
    monkeypatch.setattr(KC, "PARALLEL_MIN_ELEMENTS", 1 << 40)
    ser = run_kernels(KC, x3, g, b, t, eps, dz3)
    for p, s in zip(par, ser):
        np.testing.assert_allclose(p, s, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(par[0], oracle(x3, g, b, eps, t), **tol(dtype))


def test_nan_stays_in_its_plane_and_zero_planes_are_finite():
    x3 = np.ones((2, 3, 4), np.float32)
    x3[0, 1, 2] = np.nan
    x3[1, 2] = 0.0
    C = 3
    out = run_kernels(KC, x3, np.ones(C), np.zeros(C), np.full(C, -5.0), np.full(C, 1e-6),
                      np.ones_like(x3))
    z3, dx3 = out[0], out[2]
    assert np.all(np.isnan(z3[0, 1])) and np.all(np.isnan(dx3[0, 1]))
    mask = np.ones((2, 3), bool)
    mask[0, 1] = False
    assert np.all(np.isfinite(z3[mask])) and np.all(np.isfinite(dx3[mask]))
    assert np.all(z3[1, 2] == 0)


def test_large_offset_float32_keeps_precision():
    rng = np.random.default_rng(4)
    x3 = (1e4 + rng.standard_normal((2, 3, 5000))).astype(np.float32)
    out = run_kernels(KC, x3, np.ones(3), np.zeros(3), None, np.full(3, 1e-6), x3)
    exact = 1 / np.sqrt((x3.astype(np.float64) ** 2).mean(axis=2) + 1e-6)
    np.testing.assert_allclose(out[1], exact, rtol=1e-12)


def test_without_dx():
    rng = np.random.default_rng(5)
    x3 = rng.standard_normal((2, 3, 4))
    args = (np.ones(3), np.zeros(3), np.zeros(3))
    ref = run_kernels(KC, x3, *args, np.full(3, 1e-6), x3)
    sums = [np.empty((2, 3)) for _ in range(3)]
    KC.frn_backward(x3, x3, *args, ref[1], None, *sums)
    for s, r in zip(sums, ref[3:]):
        np.testing.assert_array_equal(s, r)
