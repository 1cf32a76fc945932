"""RMSNorm CPU kernels (tinynorm.kernels.cpu.rms_norm) against the oracle: serial and parallel paths, float32/float64, edge cases."""
import numpy as np
import pytest

import tinynorm.kernels.cpu.rms_norm as KC

from oracles.rms_norm import oracle, run_kernels, tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_paths_agree_with_oracle(dtype, monkeypatch):
    rng = np.random.default_rng(1)
    x2 = rng.standard_normal((67, 513)).astype(dtype)
    assert x2.size >= KC.PARALLEL_MIN_ELEMENTS
    dy2 = rng.standard_normal(x2.shape).astype(dtype)
    w = rng.uniform(0.5, 2, 513).astype(dtype)
    par = run_kernels(KC, x2, w, dy2)
    monkeypatch.setattr(KC, "PARALLEL_MIN_ELEMENTS", 1 << 40)
    ser = run_kernels(KC, x2, w, dy2)
    ey, edx, edw = oracle(x2, 1, w, 1e-5, dy2)
    for got in (par, ser):
        assert got[0].dtype == dtype and got[2].dtype == dtype
        np.testing.assert_allclose(got[0], ey, **tol(dtype))
        np.testing.assert_allclose(got[2], edx, **tol(dtype))
        np.testing.assert_allclose(got[3], edw, rtol=1e-4 if dtype == np.float32 else 1e-10)
    np.testing.assert_allclose(par[1], ser[1], rtol=1e-14)


def test_nan_stays_in_its_row_and_zero_rows_are_finite():
    x2 = np.ones((4, 6), np.float32)
    x2[1, 2] = np.nan
    x2[3] = 0.0
    y2, rstd, dx2, dw = run_kernels(KC, x2, np.ones(6, np.float32), np.ones_like(x2))
    assert np.all(np.isnan(y2[1])) and np.all(np.isnan(dx2[1])) and np.all(np.isnan(dw))
    for r in (0, 2, 3):
        assert np.all(np.isfinite(y2[r])) and np.all(np.isfinite(dx2[r]))
    assert np.all(y2[3] == 0)


def test_large_offset_float32_keeps_precision():
    rng = np.random.default_rng(2)
    x2 = (1e4 + rng.standard_normal((8, 4096))).astype(np.float32)
    y2, rstd, _, _ = run_kernels(KC, x2, None, np.ones_like(x2))
    np.testing.assert_allclose(rstd, 1 / np.sqrt((x2.astype(np.float64) ** 2).mean(1) + 1e-5),
                               rtol=1e-12)
    np.testing.assert_allclose(y2, oracle(x2, 1, None, 1e-5), rtol=2e-7)


def test_dw_only_and_empty_rows():
    rng = np.random.default_rng(3)
    x2 = rng.standard_normal((3, 5))
    dy2 = rng.standard_normal((3, 5))
    w = rng.uniform(0.5, 2, 5)
    rstd, dw = np.empty(3), np.empty(5)
    KC.rms_forward(x2, w, 1e-5, np.empty_like(x2), rstd)
    KC.rms_backward(dy2, x2, w, rstd, None, dw)
    np.testing.assert_allclose(dw, oracle(x2, 1, w, 1e-5, dy2)[2], rtol=1e-12)
    e = np.empty((0, 5))
    dw0 = np.full(5, 7.0)
    KC.rms_forward(e, None, 1e-5, np.empty_like(e), np.empty(0))
    KC.rms_backward(e, e, w, np.empty(0), np.empty_like(e), dw0)
    assert np.all(dw0 == 0)
