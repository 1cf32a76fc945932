"""The LSTM CPU kernels (tinynorm/kernels/cpu/lstm.py) on their own: the float32 rational tanh
and sigmoid against float64, the step kernels and the per-step batch statistics against NumPy
formulas."""
import numba
import numpy as np
from hypothesis import given, settings, strategies as st

from oracles.lstm import sig
from tinynorm.kernels.cpu import lstm as K

FAST = settings(max_examples=10, deadline=None)


@numba.njit
def _apply(x, out_t, out_s):
    for k in range(x.shape[0]):
        out_t[k] = K._tanh(x[k])
        out_s[k] = K._sigmoid(x[k])


def test_tanh_and_sigmoid_are_within_an_ulp_of_one_or_so():
    grid = np.concatenate([np.linspace(-20, 20, 400001), [0.0, 1e-30, -1e-8, 88.0, -88.0, 1e4, -1e4]])
    for dtype, atol in ((np.float32, 4e-7), (np.float64, 1e-15)):
        x = grid.astype(dtype)
        t, s = np.empty_like(x), np.empty_like(x)
        _apply(x, t, s)
        ref = x.astype(np.float64)
        np.testing.assert_allclose(t, np.tanh(ref), atol=atol, rtol=0)
        np.testing.assert_allclose(s, sig(ref), atol=atol, rtol=0)
        assert np.all(np.abs(t) <= 1) and np.all((s >= 0) & (s <= 1))
        special = np.array([np.inf, -np.inf, np.nan], dtype)
        t, s = np.empty_like(special), np.empty_like(special)
        _apply(special, t, s)
        np.testing.assert_array_equal(t, [1, -1, np.nan])
        np.testing.assert_array_equal(s, [1, 0, np.nan])


@FAST
@given(n=st.integers(1, 5), h=st.integers(1, 9), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**31))
def test_lstm_step_kernels_match_the_formulas(n, h, dtype, seed):
    rng = np.random.default_rng(seed)
    hw, xw = (rng.standard_normal((n, 4 * h)).astype(dtype) for _ in range(2))
    c_prev = rng.standard_normal((n, h)).astype(dtype)
    act, c, tc, hh = (np.empty((n, k * h), dtype) for k in (4, 1, 1, 1))
    K.lstm_step_forward(hw, xw, c_prev, act, c, tc, hh)
    pre = hw.astype(np.float64) + xw
    i, f, g, o = sig(pre[:, :h]), sig(pre[:, h:2 * h]), np.tanh(pre[:, 2 * h:3 * h]), sig(pre[:, 3 * h:])
    want_c = f * c_prev + i * g
    close = dict(atol=1e-6, rtol=1e-5) if dtype == np.float32 else dict(atol=1e-14, rtol=1e-13)
    np.testing.assert_allclose(act, np.concatenate([i, f, g, o], axis=1), **close)
    np.testing.assert_allclose(c, want_c, **close)
    np.testing.assert_allclose(hh, o * np.tanh(want_c), **close)
    dy, dh_next, dc = (rng.standard_normal((n, h)).astype(dtype) for _ in range(3))
    dc_in, dpre = dc.astype(np.float64), np.empty((n, 4 * h), dtype)
    K.lstm_step_backward(dy, dh_next, dc, act, c_prev, tc, dpre)
    a = act.astype(np.float64)
    i, f, g, o = a[:, :h], a[:, h:2 * h], a[:, 2 * h:3 * h], a[:, 3 * h:]
    t = tc.astype(np.float64)
    dh = dy.astype(np.float64) + dh_next
    dct = dc_in + dh * o * (1 - t ** 2)
    want = np.concatenate([dct * g * i * (1 - i), dct * c_prev * f * (1 - f), dct * i * (1 - g ** 2),
                           dh * t * o * (1 - o)], axis=1)
    np.testing.assert_allclose(dpre, want, **close)
    np.testing.assert_allclose(dc, dct * f, **close)


@FAST
@given(t=st.integers(1, 4), n=st.integers(2, 6), ch=st.integers(1, 7), use_batch=st.booleans(),
       seed=st.integers(0, 2**31))
def test_bn_sequence_kernels_match_the_formulas(t, n, ch, use_batch, seed):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((t, n, ch)) * 3 + 5
    gamma, bias = rng.uniform(0.5, 2, ch), rng.standard_normal(ch)
    mean, var = ((v.mean(1), v.var(1)) if not use_batch else (np.empty((t, ch)), np.empty((t, ch))))
    xhat, out, inv = np.empty_like(v), np.empty_like(v), np.empty((t, ch))
    K.bn_sequence_forward(v, mean, var, use_batch, 1e-5, gamma, bias, xhat, out, inv)
    m, s = v.mean(1, keepdims=True), np.sqrt(v.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(mean, m[:, 0], rtol=1e-13)
    np.testing.assert_allclose(xhat, (v - m) / s, atol=1e-12)
    np.testing.assert_allclose(out, gamma * (v - m) / s + bias, atol=1e-12)
    gout = rng.standard_normal(v.shape)
    dv, dgamma, dbias = np.empty_like(v), np.empty(ch), np.empty(ch)
    K.bn_sequence_backward(gout, xhat, inv, gamma, use_batch, dv, dgamma, dbias)
    dxh = gout * gamma
    want = (dxh - dxh.mean(1, keepdims=True) - xhat * (dxh * xhat).mean(1, keepdims=True)) / s \
        if use_batch else dxh / s
    np.testing.assert_allclose(dv, want, atol=1e-12)
    np.testing.assert_allclose(dgamma, (gout * xhat).sum((0, 1)), atol=1e-12)
    np.testing.assert_allclose(dbias, gout.sum((0, 1)), atol=1e-12)


def test_update_running_walks_the_steps_in_order_onto_the_last_row():
    rng = np.random.default_rng(0)
    mean, var = rng.standard_normal((5, 3)), rng.uniform(0.5, 2, (5, 3))
    rm, rv = np.zeros((2, 3)), np.ones((2, 3))
    K.update_running(rm, rv, mean, var, 4, 0.25)
    want_m, want_v = np.zeros((2, 3)), np.ones((2, 3))
    for t in range(5):
        r = min(t, 1)
        want_m[r] = 0.75 * want_m[r] + 0.25 * mean[t]
        want_v[r] = 0.75 * want_v[r] + 0.25 * var[t] * 4 / 3
    np.testing.assert_allclose(rm, want_m, rtol=1e-14)
    np.testing.assert_allclose(rv, want_v, rtol=1e-14)
