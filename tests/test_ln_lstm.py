"""LN-LSTM (Ba et al. 2016): a naive float64 loop oracle written from docs/norms.md#ln-lstm,
parameters, gradients, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
import tinynorm.functional as F
from tinynorm.nn.lstm import LNLSTM, ln_lstm_layer
from tinynorm.testing import gradcheck

from oracles.lstm import assert_inputs_refused, flat, oracle_cell, randomize

FAST = settings(max_examples=8, deadline=None)
TINY = st.integers(2, 3)


# ---- the oracle: LN over the features of each row ---------------------------------

def oracle_ln(v, alpha, beta, eps):
    """LN over the features of each row of v (N, C): the sample's own mean and biased variance."""
    n, ch = v.shape
    out = np.empty_like(v)
    for r in range(n):
        mu = sum(v[r]) / ch
        var = sum((a - mu) ** 2 for a in v[r]) / ch
        for j in range(ch):
            out[r, j] = alpha[j] * (v[r, j] - mu) / np.sqrt(var + eps) + beta[j]
    return out


def oracle_lnlstm(x, h0, c0, p, eps=1e-5):
    """Ba et al. 2016's LN-LSTM over time-major x (T, N, in); p: dict of LNLSTM parameters."""
    x = np.asarray(x, np.float64)
    hsz = p["weight_hh"].shape[1]
    h, c, out = np.array(h0, np.float64), np.array(c0, np.float64), []
    for t in range(x.shape[0]):
        wx = oracle_ln(x[t] @ p["weight_ih"].T, p["ln_ih_weight"], p["ln_ih_bias"], eps)
        wh = oracle_ln(h @ p["weight_hh"].T, p["ln_hh_weight"], p["ln_hh_bias"], eps)
        pre = [wx[:, g * hsz:(g + 1) * hsz] + wh[:, g * hsz:(g + 1) * hsz] + p["bias"][g * hsz:(g + 1) * hsz]
               for g in range(4)]
        h, c = oracle_cell(pre, c, lambda cc: oracle_ln(cc, p["ln_c_weight"], p["ln_c_bias"], eps))
        out.append(h)
    return np.stack(out), h, c


LN_PARAMS = ("weight_ih", "weight_hh", "bias", "ln_ih_weight", "ln_ih_bias", "ln_hh_weight",
             "ln_hh_bias", "ln_c_weight", "ln_c_bias")


# ---- forward against the oracle, parameters ------------------------------------

@FAST
@given(t=st.integers(1, 4), n=st.integers(1, 3), i=st.integers(1, 3), h=st.integers(1, 3),
       batch_first=st.booleans(), with_hx=st.booleans(), training=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**31))
def test_lnlstm_forward_matches_oracle(t, n, i, h, batch_first, with_hx, training, dtype, seed):
    rng = np.random.default_rng(seed)
    m = LNLSTM(i, h, batch_first=batch_first, dtype=dtype)
    randomize(m, rng)
    m.train(training)
    x = rng.standard_normal((t, n, i)).astype(dtype)
    h0 = rng.standard_normal((n, h)).astype(dtype) if with_hx else np.zeros((n, h), dtype)
    c0 = rng.standard_normal((n, h)).astype(dtype) if with_hx else np.zeros((n, h), dtype)
    hx = (tn.tensor(h0[None]), tn.tensor(c0[None])) if with_hx else None
    out, (hn, cn) = m(tn.tensor(x.transpose(1, 0, 2) if batch_first else x), hx)
    ref, ref_h, ref_c = oracle_lnlstm(x, h0, c0, {k: getattr(m, k).data.astype(np.float64)
                                                  for k in LN_PARAMS})
    tol = 2e-4 if dtype == np.float32 else 1e-10
    got = out.data.transpose(1, 0, 2) if batch_first else out.data
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(hn.data[0], ref_h, rtol=tol, atol=tol)
    np.testing.assert_allclose(cn.data[0], ref_c, rtol=tol, atol=tol)
    assert out.dtype == dtype


def test_lnlstm_init_parameters_and_any_length():
    m = LNLSTM(3, 4)
    assert [k for k, _ in m.named_parameters()] == list(LN_PARAMS)
    assert list(m.state_dict()) == list(LN_PARAMS)
    np.testing.assert_array_equal(m.ln_ih_weight.data, 1)
    np.testing.assert_array_equal(m.ln_c_bias.data, 0)
    np.testing.assert_array_equal(m.bias.data[4:8], 1)
    np.testing.assert_array_equal(m.bias.data[:4], 0)
    w = m.weight_hh.data.astype(np.float64)
    for g in range(4):
        np.testing.assert_allclose(w[4 * g:4 * g + 4] @ w[4 * g:4 * g + 4].T, np.eye(4), atol=1e-6)
    # no batch or time statistics: a batch of one, and a sequence of any length, in training
    out, _ = m(tn.tensor(np.ones((50, 1, 3), np.float32)))
    assert out.shape == (50, 1, 4) and np.isfinite(out.data).all()


# ---- gradients and errors -------------------------------------------------------

@FAST
@given(t=TINY, n=st.integers(1, 3), i=TINY, h=TINY, seed=st.integers(0, 2**31))
def test_lnlstm_gradcheck_input_state_and_every_parameter(t, n, i, h, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in
              ((t, n, i), (n, h), (n, h), (4 * h, i), (4 * h, h), (4 * h,))]
    arrays += [rng.uniform(0.5, 1.5, 4 * h), rng.standard_normal(4 * h),
               rng.uniform(0.5, 1.5, 4 * h), rng.standard_normal(4 * h),
               rng.uniform(0.5, 1.5, h), rng.standard_normal(h)]

    def fn(*args):
        hs, hn, cn = ln_lstm_layer(*args)
        return flat(F.stack(hs), hn, cn)

    gradcheck(fn, arrays, atol=1e-5, rtol=1e-3)


def test_lnlstm_errors_name_the_problem():
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        LNLSTM(3, 0)
    m = LNLSTM(3, 4)
    assert_inputs_refused(m, [((2, 3), np.float32, "Expected input to be 3D"),
                              ((2, 2, 5), np.float32, "input_size")])
