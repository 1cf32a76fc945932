"""Group normalization CPU kernels (tinynorm.kernels.cpu.group_norm) against a naive oracle.

The oracle is written from docs/norms.md#groupnorm-layernorm-instancenorm with explicit
Python loops over rows, slots and values in float64 (math.fsum), and never
calls the kernels. x4 has shape (N, G, K, S): row (n, g), slot (g, k).
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm.kernels.cpu.group_norm as K

DTYPES = [np.float32, np.float64]
EPS = 1e-5
# (N, G, K, S): per-channel slots (S >= 16), short slots made elementwise (1 < S < 16),
# LayerNorm-like rows (K values of S == 1), InstanceNorm-like rows (K == 1), one row
SHAPES = [(3, 2, 3, 20), (4, 2, 3, 5), (5, 1, 40, 1), (6, 4, 1, 33), (2, 3, 2, 1), (1, 1, 1, 300),
          (7, 2, 2, 17)]


# ---- oracle ------------------------------------------------------------------

def _row(x4, n, g):
    _, _, Kk, S = x4.shape
    return [float(x4[n, g, k, s]) for k in range(Kk) for s in range(S)]


def oracle_forward(x4, w, b, eps=EPS):
    N, G, Kk, S = x4.shape
    y = np.zeros(x4.shape)
    mean, rstd = np.zeros((N, G)), np.zeros((N, G))
    for n in range(N):
        for g in range(G):
            vals = _row(x4, n, g)
            mu = math.fsum(vals) / len(vals)
            var = math.fsum((v - mu) ** 2 for v in vals) / len(vals)
            rs = 1 / math.sqrt(var + eps)
            mean[n, g], rstd[n, g] = mu, rs
            for k in range(Kk):
                for s in range(S):
                    y[n, g, k, s] = (float(x4[n, g, k, s]) - mu) * rs * w[g * Kk + k] + b[g * Kk + k]
    return y, mean, rstd


def oracle_backward(dy4, x4, w, mean, rstd):
    """dx, dgamma, dbeta from docs/norms.md#groupnorm-layernorm-instancenorm with the rows' given statistics."""
    N, G, Kk, S = x4.shape
    M = Kk * S
    dx = np.zeros(x4.shape)
    dw, db = np.zeros(G * Kk), np.zeros(G * Kk)
    for n in range(N):
        for g in range(G):
            mu, rs = mean[n, g], rstd[n, g]
            xhat = [[(float(x4[n, g, k, s]) - mu) * rs for s in range(S)] for k in range(Kk)]
            dxhat = [[float(dy4[n, g, k, s]) * w[g * Kk + k] for s in range(S)] for k in range(Kk)]
            sum_dxhat = math.fsum(v for row in dxhat for v in row)
            sum_dxhat_xhat = math.fsum(dxhat[k][s] * xhat[k][s] for k in range(Kk) for s in range(S))
            for k in range(Kk):
                for s in range(S):
                    dx[n, g, k, s] = rs / M * (M * dxhat[k][s] - sum_dxhat
                                               - xhat[k][s] * sum_dxhat_xhat)
                    dw[g * Kk + k] += float(dy4[n, g, k, s]) * xhat[k][s]
                    db[g * Kk + k] += float(dy4[n, g, k, s])
    return dx, dw, db


# ---- helpers -----------------------------------------------------------------

def configure(monkeypatch, parallel, nchunks=None, small_pieces=False, layout=None,
              elementwise=None):
    """Force the serial or parallel kernels; optionally more runs than threads and tiny
    row segments (every Chan merge runs on small inputs); one traversal ("rows" or
    "cols", the latter with pieces of 3 columns); all slots per value ("elementwise")
    or per slot ("slots")."""
    monkeypatch.setattr(K, "PARALLEL_MIN_ELEMENTS", 0 if parallel else 10**18)
    if nchunks is not None:
        monkeypatch.setattr(K, "get_num_threads", lambda: nchunks)
    if small_pieces:
        monkeypatch.setattr(K, "SEGMENT", 7)
    if layout == "rows":
        monkeypatch.setattr(K, "SPLIT_ROWS_PER_THREAD", 0)
    elif layout == "cols":
        monkeypatch.setattr(K, "SPLIT_ROWS_PER_THREAD", 10**9)
        monkeypatch.setattr(K, "MIN_PIECE", 3)
    if elementwise is not None:
        monkeypatch.setattr(K, "ELEMENTWISE_MIN_S", 10**9 if elementwise else 2)


@pytest.fixture(params=["serial", "parallel", "chunked-rows", "chunked-cols", "cols-slots",
                        "rows-slots"])
def path(request, monkeypatch):
    p = request.param
    if p == "serial":
        configure(monkeypatch, parallel=False)
    elif p == "parallel":
        configure(monkeypatch, parallel=True)
    else:
        layout = "cols" if "cols" in p else "rows"
        configure(monkeypatch, parallel=True, nchunks=3, small_pieces=True, layout=layout,
                  elementwise=False if "slots" in p else None)
    return p


def make(rng, shape, dtype, loc=0.0):
    return (loc + rng.standard_normal(shape)).astype(dtype)


def run_forward(x4, w, b):
    N, G = x4.shape[:2]
    y4 = np.empty_like(x4)
    mean, rstd = np.empty((N, G)), np.empty((N, G))
    K.gn_forward(x4, w, b, EPS, y4, mean, rstd)
    return y4, mean, rstd


def run_backward(dy4, x4, w, mean, rstd):
    GK = x4.shape[1] * x4.shape[2]
    dx4, dw, db = np.empty_like(x4), np.empty(GK), np.empty(GK)
    K.gn_backward(dy4, x4, w, mean, rstd, dx4, dw, db)
    return dx4, dw, db


def params(rng, shape):
    GK = shape[1] * shape[2]
    return rng.uniform(0.5, 2, GK) * rng.choice([-1, 1], GK), rng.standard_normal(GK)


def check_all(rng, x4):
    """Forward and backward against the oracle, tolerances scaled to x's dtype."""
    w, b = params(rng, x4.shape)
    dy4 = make(rng, x4.shape, x4.dtype)
    f32 = x4.dtype == np.float32
    y4, mean, rstd = run_forward(x4, w, b)
    assert y4.dtype == x4.dtype
    ry, rm, rr = oracle_forward(x4, w, b)
    unit = float(np.finfo(x4.dtype).eps)
    np.testing.assert_allclose(mean, rm, rtol=0, atol=1e-13 * (np.abs(x4.astype(np.float64)).max() + 1))
    np.testing.assert_allclose(rstd, rr, rtol=1e-9)
    # float32: y = (x - hi)*a - lo*a ... with the float64 mean held as hi + lo, so y's error is
    # in units of the deviations from the mean, not of |x| (1e4 + N(0, 1) loses nothing);
    # float64: the mean's own rounding is relative to |x|
    x64 = x4.astype(np.float64)
    spread = np.abs(x64 - rm[:, :, None, None] if f32 else x64).max() + 1
    bound = 8 * unit * (2 * spread * rr.max() * np.abs(w).max() + np.abs(b).max())
    np.testing.assert_allclose(y4, ry, rtol=0, atol=bound)
    dx4, dw, db = run_backward(dy4, x4, w, rm, rr)
    rdx, rdw, rdb = oracle_backward(dy4, x4, w, rm, rr)
    assert dx4.dtype == x4.dtype and dw.dtype == np.float64
    terms = np.abs(rdx).max() + rr.max() * np.abs(dy4 * w.reshape(1, *x4.shape[1:3], 1)).max()
    np.testing.assert_allclose(dx4, rdx, rtol=0, atol=(5e-6 if f32 else 1e-13) * terms)
    check_param_grads(dy4, x4, rm, rr, dw, db, rdw, rdb)


def check_param_grads(dy4, x4, mean, rstd, dw, db, rdw, rdb):
    """dgamma/dbeta: float64 sums, except LayerNorm's float32 terms (one group of per-value
    slots: summed in blocks in float32), whose error is relative to the sum of the terms'
    magnitudes."""
    _, G, _, S = x4.shape
    if x4.dtype == np.float64 or G > 1 or S >= K.ELEMENTWISE_MIN_S:
        np.testing.assert_allclose(dw, rdw, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(db, rdb, rtol=1e-10, atol=1e-10)
        return
    g = dy4.astype(np.float64)
    xhat = (x4.astype(np.float64) - mean[:, :, None, None]) * rstd[:, :, None, None]
    unit = float(np.finfo(np.float32).eps)
    for got, want, terms in ((dw, rdw, g * xhat), (db, rdb, g)):
        bound = 16 * unit * np.abs(terms).sum(axis=(0, 3)).ravel()
        assert np.all(np.abs(got - want) <= bound), np.max(np.abs(got - want) / bound)


# ---- tests -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward(path, shape, dtype):
    check_all(np.random.default_rng(1), make(np.random.default_rng(2), shape, dtype, loc=3.0))


@pytest.mark.parametrize("shape, how", [((16, 2, 8, 160), "rows"), ((64, 1, 512, 1), "rows"),
                                        ((3, 1, 1, 20000), "cols"), ((2, 1, 20000, 1), "cols")])
def test_large_inputs_take_the_parallel_paths(shape, how):
    """Above PARALLEL_MIN_ELEMENTS: rows (many rows) or cols (few long rows), unpatched."""
    rng = np.random.default_rng(3)
    x4 = make(rng, shape, np.float64, loc=-2.0)
    N, G, Kk, S = shape
    assert K._plan(N * G, Kk * S)[::2] == (how, True)
    w, b = params(rng, shape)
    y4, mean, rstd = run_forward(x4, w, b)
    x3 = x4.reshape(N, G, -1)
    mu, var = x3.mean(axis=2), x3.var(axis=2)
    np.testing.assert_allclose(mean, mu, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(var + EPS), rtol=1e-11)
    xhat = (x3 - mu[..., None]) * rstd[..., None]
    gam, bet = w.reshape(1, G, Kk, 1), b.reshape(1, G, Kk, 1)
    np.testing.assert_allclose(y4, xhat.reshape(shape) * gam + bet, rtol=1e-11, atol=1e-11)
    dy4 = make(rng, shape, np.float64)
    dx4, dw, db = run_backward(dy4, x4, w, mean, rstd)
    dxhat = (dy4 * gam).reshape(N, G, -1)
    ref = rstd[..., None] * (dxhat - dxhat.mean(axis=2, keepdims=True)
                             - xhat * (dxhat * xhat).mean(axis=2, keepdims=True))
    np.testing.assert_allclose(dx4, ref.reshape(shape), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(dw, (dy4 * xhat.reshape(shape)).sum(axis=(0, 3)).ravel(),
                               rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(db, dy4.sum(axis=(0, 3)).ravel(), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("shape", [(64, 2, 4, 16), (8, 1, 300, 1), (2, 1, 1, 2000)])
def test_float32_stats_stable_far_from_zero(path, shape):
    """1e4 + N(0, 1) in float32 keeps its variance (no sum-of-squares cancellation)."""
    x4 = make(np.random.default_rng(4), shape, np.float32, loc=1e4)
    _, mean, rstd = run_forward(x4, None, None)
    x3 = x4.astype(np.float64).reshape(shape[0], shape[1], -1)
    ref_var = x3.var(axis=2)
    var = 1 / rstd ** 2 - EPS
    assert np.all(ref_var > 0.5)
    assert np.max(np.abs(var / ref_var - 1)) < 1e-6
    np.testing.assert_allclose(mean, x3.mean(axis=2), rtol=1e-13)


@pytest.mark.parametrize("shape", [(64, 1, 300, 1), (9, 1, 1000, 1), (6, 2, 40, 1), (4, 2, 3, 20),
                                   (3, 2, 2, 5)])
def test_float32_about_a_far_mean(path, shape):
    """1e4 + N(0, 1) in float32: y and dx keep x - mean as exact as for centred data (the mean
    held as hi + lo in float32), and so do LayerNorm's float32 dgamma/dbeta."""
    rng = np.random.default_rng(7)
    check_all(rng, make(rng, shape, np.float32, loc=1e4))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 2, 2, 20), (2, 3, 4, 1), (3, 2, 1, 5)])
def test_nan_propagates_to_its_row_and_slot(path, shape, dtype):
    rng = np.random.default_rng(5)
    N, G, Kk, S = shape
    x4 = make(rng, shape, dtype)
    x4[1, 1, Kk - 1, S - 1] = np.nan
    w, b = params(rng, shape)
    y4, mean, rstd = run_forward(x4, w, b)
    assert np.isnan(mean[1, 1]) and np.isnan(rstd[1, 1]) and np.all(np.isnan(y4[1, 1]))
    finite = np.ones((N, G), bool)
    finite[1, 1] = False
    assert np.all(np.isfinite(y4[finite]))

    x4 = make(rng, shape, dtype)
    _, mean, rstd = run_forward(x4, w, b)
    dy4 = make(rng, shape, dtype)
    dy4[0, 1, 0, 0] = np.nan
    dx4, dw, db = run_backward(dy4, x4, w, mean, rstd)
    assert np.all(np.isnan(dx4[0, 1]))
    finite[...] = True
    finite[0, 1] = False
    assert np.all(np.isfinite(dx4[finite]))
    assert np.isnan(dw[Kk]) and np.isnan(db[Kk])
    assert np.isfinite(dw).sum() == dw.size - 1 and np.isfinite(db).sum() == db.size - 1


def test_constant_rows_give_finite_output(path):
    x4 = np.full((3, 2, 4, 20), 7.25, dtype=np.float32)
    y4, mean, rstd = run_forward(x4, None, None)
    np.testing.assert_array_equal(mean, 7.25)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(EPS))
    np.testing.assert_array_equal(y4, 0.0)
    dx4, dw, db = run_backward(np.ones_like(x4), x4, None, mean, rstd)
    assert np.all(np.isfinite(dx4)) and np.all(dw == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(70, 1, 50, 1), (5, 1, 9, 1)])
def test_layer_norm_parameter_gradients_without_dx(path, shape, dtype):
    """LayerNorm's dgamma/dbeta without dx sum the same terms in the same order as with it."""
    rng = np.random.default_rng(8)
    x4, dy4 = make(rng, shape, dtype, loc=-1.0), make(rng, shape, dtype)
    w, b = params(rng, shape)
    _, mean, rstd = run_forward(x4, w, b)
    _, dw_ref, db_ref = run_backward(dy4, x4, w, mean, rstd)
    dw, db = np.empty(shape[2]), np.empty(shape[2])
    K.gn_backward(dy4, x4, w, mean, rstd, None, dw, db)
    np.testing.assert_array_equal(dw, dw_ref)
    np.testing.assert_array_equal(db, db_ref)
    _, rdw, rdb = oracle_backward(dy4, x4, w, mean, rstd)
    check_param_grads(dy4, x4, mean, rstd, dw, db, rdw, rdb)


@pytest.mark.parametrize("dtype", DTYPES)
def test_optional_outputs_and_default_affine(path, dtype):
    """weight/bias None mean ones/zeros; dx4, dweight, dbias may each be skipped."""
    rng = np.random.default_rng(6)
    shape = (4, 2, 3, 20)
    x4, dy4 = make(rng, shape, dtype), make(rng, shape, dtype)
    ones = np.ones(6)
    y_none, mean, rstd = run_forward(x4, None, None)
    y_ones, _, _ = run_forward(x4, ones, np.zeros(6))
    np.testing.assert_array_equal(y_none, y_ones)
    dx_ref, dw_ref, db_ref = run_backward(dy4, x4, ones, mean, rstd)
    dx4 = np.empty_like(x4)
    K.gn_backward(dy4, x4, None, mean, rstd, dx4, None, None)
    np.testing.assert_array_equal(dx4, dx_ref)
    dw = np.empty(6)
    K.gn_backward(dy4, x4, None, mean, rstd, None, dw, None)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-14, atol=1e-14)
    db = np.empty(6)
    K.gn_backward(dy4, x4, None, mean, rstd, None, None, db)
    np.testing.assert_allclose(db, db_ref, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("shape", [(0, 2, 3, 4), (2, 2, 0, 4), (2, 2, 3, 0)])
def test_empty_input(shape):
    x4 = np.zeros(shape, dtype=np.float32)
    N, G, Kk, _ = shape
    y4, mean, rstd = run_forward(x4, None, None)
    if N and not Kk * shape[3]:
        assert np.all(np.isnan(mean)) and np.all(np.isnan(rstd))
    dx4, dw, db = run_backward(x4, x4, None, mean, rstd)
    assert np.all(dw == 0) and np.all(db == 0)


def test_wrappers_reject_mismatches():
    x4 = np.zeros((2, 3, 4, 5), dtype=np.float32)
    vec, rows = np.zeros(12), np.zeros((2, 3))
    with pytest.raises(AssertionError):
        K.gn_forward(x4, np.zeros(3), None, EPS, np.empty_like(x4), rows, rows.copy())
    with pytest.raises(AssertionError):
        K.gn_forward(x4, vec.astype(np.float32), None, EPS, np.empty_like(x4), rows, rows.copy())
    with pytest.raises(AssertionError):
        K.gn_forward(x4, vec, vec, EPS, np.empty(x4.shape), rows, rows.copy())
    with pytest.raises(AssertionError):
        K.gn_forward(x4.reshape(6, 4, 5), vec, vec, EPS, np.empty_like(x4), rows, rows.copy())
    with pytest.raises(AssertionError):
        K.gn_backward(x4[:, :, :, ::2], x4[:, :, :, ::2], None, rows, rows, None, None, None)
    with pytest.raises(AssertionError):
        K.gn_backward(x4, x4, None, np.zeros((3, 2)), rows, None, vec, vec)


def test_serial_and_parallel_twins_are_distinct():
    """Both builds of a body must not share one on-disk cache entry."""
    ser, par = K._forward_rows_serial, K._forward_rows_parallel
    assert ser.py_func.__qualname__ != par.py_func.__qualname__
    assert par.targetoptions.get("parallel") and not ser.targetoptions.get("parallel")


@settings(max_examples=25, deadline=None)
@given(N=st.integers(1, 6), G=st.integers(1, 3), Kk=st.integers(1, 5), S=st.integers(1, 24),
       dtype=st.sampled_from(DTYPES), parallel=st.booleans(), nchunks=st.integers(1, 4),
       small_pieces=st.booleans(), layout=st.sampled_from([None, "rows", "cols"]),
       elementwise=st.sampled_from([None, True, False]),
       loc=st.sampled_from([0.0, -50.0, 1e3]), seed=st.integers(0, 2**32 - 1))
def test_drawn_shapes_and_paths(N, G, Kk, S, dtype, parallel, nchunks, small_pieces, layout,
                                elementwise, loc, seed):
    with pytest.MonkeyPatch.context() as mp:
        configure(mp, parallel, nchunks, small_pieces, layout, elementwise)
        rng = np.random.default_rng(seed)
        check_all(rng, make(rng, (N, G, Kk, S), dtype, loc=loc))


@pytest.mark.parametrize("S, K_", [(2, 1), (1, 2), (40, 1)])
def test_dx_keeps_the_float64_mean_when_it_cancels(S, K_):
    """|mean| >> std over few values: dx is a small difference of large terms, so rounding the
    mean to float32 first (an error of |mean|*eps32) would show up in dx. Found by hypothesis."""
    x4 = np.array([-49.87427, -50.132103] * (S * K_ // 2 or 1), np.float32)[:S * K_]
    x4 = x4.reshape(1, 1, K_, S)
    rng = np.random.default_rng(0)
    w, _ = params(rng, x4.shape)
    dy4 = make(rng, x4.shape, np.float32)
    _, mean, rstd = run_forward(x4, w, None)
    dx4, _, _ = run_backward(dy4, x4, w, mean, rstd)
    rdx, _, _ = oracle_backward(dy4, x4, w, mean, rstd)
    scale = np.abs(rdx).max() + rstd.max() * np.abs(dy4).max() * np.abs(w).max()
    np.testing.assert_allclose(dx4, rdx, rtol=0, atol=4e-7 * scale)
