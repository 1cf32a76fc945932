"""tinynorm.blas.matmul: every operand layout, both dtypes, both paths, against NumPy in float64."""
import numpy as np
import pytest

from tinynorm import blas


def _operand(rng, shape, transposed, dtype):
    if transposed:
        return rng.standard_normal(shape[::-1]).astype(dtype).T
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("mkn", [(3, 5, 4), (64, 288, 1024), (1, 7, 1), (33, 1, 65)])
def test_matmul_layouts_match_numpy(dtype, ta, tb, mkn):
    m, k, n = mkn
    rng = np.random.default_rng(0)
    a, b = _operand(rng, (m, k), ta, dtype), _operand(rng, (k, n), tb, dtype)
    out = blas.matmul(a, b)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-4 * np.sqrt(k) if dtype == np.float32 else 1e-12 * k
    assert out.dtype == dtype and out.shape == (m, n)
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)


def test_matmul_batched_and_fallbacks():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 16, 300)), rng.standard_normal((3, 300, 500))
    np.testing.assert_allclose(blas.matmul(a, b), a @ b, rtol=1e-12, atol=1e-10)
    strided = rng.standard_normal((8, 40))[:, ::2]
    np.testing.assert_allclose(blas.matmul(strided, b[0][:20]), strided @ b[0][:20], rtol=1e-12)
    ints = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(blas.matmul(ints, ints.T), ints @ ints.T)
    mixed = blas.matmul(a[0].astype(np.float32), b[0])
    np.testing.assert_allclose(mixed, a[0].astype(np.float32) @ b[0], rtol=1e-6)
    np.testing.assert_allclose(blas.matmul(a, b[0]), a @ b[0], rtol=1e-12, atol=1e-10)


def test_matmul_uses_the_numba_path_when_openblas_is_found(monkeypatch):
    if blas._found is None:
        pytest.skip("NumPy's OpenBLAS was not found; matmul is plain NumPy here")
    from tinynorm.kernels.cpu import gemm
    calls = []
    original = gemm.gemm_columns
    monkeypatch.setattr(gemm, "gemm_columns", lambda *args: calls.append(1) or original(*args))
    a, b = np.ones((64, 300)), np.ones((300, 1000))
    np.testing.assert_array_equal(blas.matmul(a, b), np.full((64, 1000), 300.0))
    blas.matmul(a[:8, :10], b[:10, :8])
    assert calls == [1]
