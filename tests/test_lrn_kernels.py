"""LRN CPU kernels (tinynorm.kernels.cpu.lrn) against the oracle: serial and parallel paths, float32/float64, edge cases."""
import numpy as np
import pytest

import tinynorm.kernels.cpu.lrn as KC

from oracles.lrn import oracle, run_kernels, tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta, size", [(0.75, 5), (0.5, 4), (0.6, 7)])
def test_serial_and_parallel_paths_agree_with_oracle(beta, size, dtype, monkeypatch):
    rng = np.random.default_rng(2)
    x3 = rng.standard_normal((2, 40, 600)).astype(dtype)
    assert x3.size >= KC.PARALLEL_MIN_ELEMENTS and 600 > KC.FORWARD_TILE and 40 > KC.REFRESH
    dy3 = rng.standard_normal(x3.shape).astype(dtype)
    save = KC.beta_mode(beta) == KC.MODE_POW
    par = run_kernels(KC, x3, size, 0.5, beta, 1.0, dy3, save)
    monkeypatch.setattr(KC, "PARALLEL_MIN_ELEMENTS", 1 << 40)
    ser = run_kernels(KC, x3, size, 0.5, beta, 1.0, dy3, save)
    unsaved = run_kernels(KC, x3, size, 0.5, beta, 1.0, dy3, False)
    eb, eda = oracle(x3, size, 0.5, beta, 1.0, dy3)
    for y3, dx3 in (par, ser, unsaved):
        assert y3.dtype == dtype and dx3.dtype == dtype
        np.testing.assert_allclose(y3, eb, **tol(dtype))
        np.testing.assert_allclose(dx3, eda, **tol(dtype))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_stay_inside_their_windows(bad):
    rng = np.random.default_rng(3)
    x3 = rng.standard_normal((2, 40, 9))
    x3[1, 14, 4] = bad
    dy3 = rng.standard_normal(x3.shape)
    y3, dx3 = run_kernels(KC, x3, 5, 0.5, 0.75, 1.0, dy3)
    with np.errstate(invalid="ignore", over="ignore"):
        eb, eda = oracle(x3, 5, 0.5, 0.75, 1.0, dy3)
    np.testing.assert_array_equal(np.isnan(y3), np.isnan(eb))
    np.testing.assert_array_equal(np.isnan(dx3), np.isnan(eda))
    assert np.isnan(eb).any() and np.isfinite(eb[0]).all()
    np.testing.assert_allclose(y3, eb, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx3, eda, rtol=1e-10, atol=1e-12)


def test_sliding_sums_survive_huge_dynamic_range():
    """A channel of 1e8 leaving the window must not leave rounding garbage behind."""
    rng = np.random.default_rng(4)
    x3 = rng.standard_normal((1, 12, 40)) * 1e-3
    x3[0, 2] = 1e8
    dy3 = rng.standard_normal(x3.shape)
    y3, dx3 = run_kernels(KC, x3, 3, 3.0, 0.75, 1e-6, dy3)
    eb, eda = oracle(x3, 3, 3.0, 0.75, 1e-6, dy3)
    np.testing.assert_allclose(y3, eb, rtol=1e-11)
    np.testing.assert_allclose(dx3, eda, rtol=1e-9, atol=1e-12 * np.abs(eda).max())


def test_large_offset_float32_keeps_precision():
    rng = np.random.default_rng(5)
    x3 = (1e4 + rng.standard_normal((2, 20, 50))).astype(np.float32)
    y3, dx3 = run_kernels(KC, x3, 5, 1e-4, 0.75, 2.0, np.ones_like(x3))
    eb, eda = oracle(x3, 5, 1e-4, 0.75, 2.0, np.ones_like(x3))
    np.testing.assert_allclose(y3, eb, rtol=1e-5)
    np.testing.assert_allclose(dx3, eda, rtol=1e-4, atol=1e-6 * np.abs(eda).max())


def test_small_tiles_and_size_larger_than_channels(monkeypatch):
    monkeypatch.setattr(KC, "FORWARD_TILE", 16)
    monkeypatch.setattr(KC, "MIN_TILE", 8)
    monkeypatch.setattr(KC, "MAX_TILE", 8)
    rng = np.random.default_rng(6)
    x3 = rng.standard_normal((2, 3, 37))
    dy3 = rng.standard_normal(x3.shape)
    for size in (1, 2, 9):
        y3, dx3 = run_kernels(KC, x3, size, 1.0, 0.75, 1.0, dy3)
        eb, eda = oracle(x3, size, 1.0, 0.75, 1.0, dy3)
        np.testing.assert_allclose(y3, eb, rtol=1e-12)
        np.testing.assert_allclose(dx3, eda, rtol=1e-10, atol=1e-13)
