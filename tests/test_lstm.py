"""LSTM, BN-LSTM and LN-LSTM: naive float64 loop oracles, gradients, torch parity, per-step statistics,
training."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
import tinynorm.functional as F
from tinynorm.nn.lstm import BNLSTM, LNLSTM, LSTM, bn_lstm_layer, ln_lstm_layer, lstm_layer
from tinynorm.sequence_models import (LSTMClassifier, build_sequence_model, image_to_sequence,
                                      pixel_permutation)
from tinynorm.testing import gradcheck

FAST = settings(max_examples=8, deadline=None)
TINY = st.integers(2, 3)


# ---- the oracle: explicit loops over steps, gates and channels ----------------

def sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def oracle_cell(pre, c_prev, c_transform=None):
    """pre: list of the four gate pre-activations (i, f, g, o), each (N, H)."""
    i, f, g, o = sig(pre[0]), sig(pre[1]), np.tanh(pre[2]), sig(pre[3])
    c = np.zeros_like(c_prev)
    for n in range(c.shape[0]):
        for j in range(c.shape[1]):
            c[n, j] = f[n, j] * c_prev[n, j] + i[n, j] * g[n, j]
    cc = c if c_transform is None else c_transform(c)
    return o * np.tanh(cc), c


def oracle_lstm(x, h0, c0, layers):
    """x (T, N, in); layers: list of (w_ih, w_hh, b_ih, b_hh). Returns output, h_n, c_n."""
    x = np.asarray(x, np.float64)
    seq = [x[t] for t in range(x.shape[0])]
    hn, cn = [], []
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(layers):
        hsz = w_hh.shape[1]
        h, c, out = np.array(h0[k], np.float64), np.array(c0[k], np.float64), []
        for x_t in seq:
            pre = []
            for gate in range(4):
                rows = slice(gate * hsz, (gate + 1) * hsz)
                p = x_t @ np.asarray(w_ih[rows], np.float64).T + h @ np.asarray(w_hh[rows], np.float64).T
                if b_ih is not None:
                    p = p + b_ih[rows] + b_hh[rows]
                pre.append(p)
            h, c = oracle_cell(pre, c)
            out.append(h)
        seq = out
        hn.append(h)
        cn.append(c)
    return np.stack(seq), np.stack(hn), np.stack(cn)


def oracle_bn(v, gamma, beta, stats, row, training, momentum, eps):
    """BN over the batch axis of v (N, C), channel by channel; updates ``stats`` rows in training."""
    n, ch = v.shape
    out = np.empty_like(v)
    for j in range(ch):
        col = v[:, j]
        if training:
            mu = sum(col) / n
            ss = sum((a - mu) ** 2 for a in col)
            var = ss / n
            if stats is not None:
                stats[0][row, j] = (1 - momentum) * stats[0][row, j] + momentum * mu
                stats[1][row, j] = (1 - momentum) * stats[1][row, j] + momentum * ss / (n - 1)
        else:
            mu, var = stats[0][row, j], stats[1][row, j]
        b = 0.0 if beta is None else beta[j]
        out[:, j] = gamma[j] * (col - mu) / np.sqrt(var + eps) + b
    return out


def oracle_bnlstm(x, h0, c0, p, stats, training, momentum=0.1, eps=1e-5):
    """p: dict of BNLSTM parameters; stats: dict name -> [mean (L, C), var (L, C)] (updated in place) or None."""
    x = np.asarray(x, np.float64)
    hsz = p["weight_hh"].shape[1]
    length = None if stats is None else stats["ih"][0].shape[0]
    h, c, out = np.array(h0, np.float64), np.array(c0, np.float64), []
    for t in range(x.shape[0]):
        row = None if stats is None else min(t, length - 1)
        get = (lambda k: None) if stats is None else (lambda k: stats[k])
        wx = oracle_bn(x[t] @ p["weight_ih"].T, p["bn_ih_weight"], None, get("ih"), row,
                       training, momentum, eps)
        wh = oracle_bn(h @ p["weight_hh"].T, p["bn_hh_weight"], None, get("hh"), row,
                       training, momentum, eps)
        pre = [wx[:, g * hsz:(g + 1) * hsz] + wh[:, g * hsz:(g + 1) * hsz] + p["bias"][g * hsz:(g + 1) * hsz]
               for g in range(4)]
        h, c = oracle_cell(pre, c, lambda cc: oracle_bn(cc, p["bn_c_weight"], p["bn_c_bias"], get("c"),
                                                       row, training, momentum, eps))
        out.append(h)
    return np.stack(out), h, c


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


# ---- helpers ------------------------------------------------------------------

def lstm_params(m):
    return [tuple(getattr(m, f"{w}_l{k}").data if m.bias or w.startswith("weight") else None
                  for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            for k in range(m.num_layers)]


BN_PARAMS = ("weight_ih", "weight_hh", "bias", "bn_ih_weight", "bn_hh_weight", "bn_c_weight", "bn_c_bias")


def bnlstm_params(m):
    return {k: getattr(m, k).data.astype(np.float64) for k in BN_PARAMS}


def bnlstm_stats(m):
    return {k: [getattr(m, f"bn_{k}_running_mean").data.astype(np.float64).copy(),
                getattr(m, f"bn_{k}_running_var").data.astype(np.float64).copy()]
            for k in ("ih", "hh", "c")}


LN_PARAMS = ("weight_ih", "weight_hh", "bias", "ln_ih_weight", "ln_ih_bias", "ln_hh_weight",
             "ln_hh_bias", "ln_c_weight", "ln_c_bias")


def randomize(m, rng, scale=0.5):
    for p in m.parameters():
        p.data[...] = rng.normal(0, scale, p.shape)


def flat(*tensors):
    return F.cat([t.reshape(-1) for t in tensors])


# ---- LSTM forward against the oracle ------------------------------------------

@FAST
@given(t=st.integers(1, 4), n=st.integers(1, 3), i=st.integers(1, 3), h=st.integers(1, 3),
       layers=st.integers(1, 2), bias=st.booleans(), batch_first=st.booleans(), with_hx=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**31))
def test_lstm_forward_matches_oracle(t, n, i, h, layers, bias, batch_first, with_hx, dtype, seed):
    rng = np.random.default_rng(seed)
    m = LSTM(i, h, num_layers=layers, bias=bias, batch_first=batch_first, dtype=dtype)
    x = rng.standard_normal((t, n, i)).astype(dtype)
    h0 = rng.standard_normal((layers, n, h)).astype(dtype) if with_hx else np.zeros((layers, n, h), dtype)
    c0 = rng.standard_normal((layers, n, h)).astype(dtype) if with_hx else np.zeros((layers, n, h), dtype)
    xin = x.transpose(1, 0, 2).copy() if batch_first else x
    out, (hn, cn) = m(tn.tensor(xin), (tn.tensor(h0), tn.tensor(c0)) if with_hx else None)
    ref_out, ref_h, ref_c = oracle_lstm(x, h0, c0, lstm_params(m))
    if batch_first:
        ref_out = ref_out.transpose(1, 0, 2)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert out.dtype == dtype and out.shape == ref_out.shape and hn.shape == (layers, n, h)
    np.testing.assert_allclose(out.data, ref_out, atol=tol, rtol=tol)
    np.testing.assert_allclose(hn.data, ref_h, atol=tol, rtol=tol)
    np.testing.assert_allclose(cn.data, ref_c, atol=tol, rtol=tol)


def test_lstm_unbatched_input_matches_batch_of_one():
    m = LSTM(3, 2, num_layers=2, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((4, 3))
    out, (h, c) = m(tn.tensor(x))
    out1, (h1, c1) = m(tn.tensor(x[:, None]))
    assert out.shape == (4, 2) and h.shape == (2, 2) and c.shape == (2, 2)
    np.testing.assert_allclose(out.data, out1.data[:, 0])
    np.testing.assert_allclose(c.data, c1.data[:, 0])


def test_lstm_parameters_and_init_follow_pytorch():
    tn.manual_seed(0)
    m = LSTM(5, 4, num_layers=2)
    shapes = {k: v.shape for k, v in m.state_dict().items()}
    assert shapes == {"weight_ih_l0": (16, 5), "weight_hh_l0": (16, 4), "bias_ih_l0": (16,),
                      "bias_hh_l0": (16,), "weight_ih_l1": (16, 4), "weight_hh_l1": (16, 4),
                      "bias_ih_l1": (16,), "bias_hh_l1": (16,)}
    allp = np.concatenate([p.data.ravel() for p in m.parameters()])
    assert np.abs(allp).max() <= 0.5 and np.abs(allp).max() > 0.45 and allp.dtype == np.float32
    assert abs(allp.mean()) < 0.05
    assert [k for k, _ in LSTM(2, 3, bias=False).named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]


# ---- BN-LSTM forward against the oracle ---------------------------------------

@FAST
@given(t=st.integers(1, 5), n=st.integers(2, 4), i=st.integers(1, 3), h=st.integers(1, 3),
       length=st.integers(1, 3), with_hx=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**31))
def test_bnlstm_training_forward_and_running_stats_match_oracle(t, n, i, h, length, with_hx, dtype, seed):
    rng = np.random.default_rng(seed)
    m = BNLSTM(i, h, max_length=length, momentum=0.3, dtype=dtype)
    randomize(m, rng)
    x = rng.standard_normal((t, n, i)).astype(dtype)
    h0 = rng.standard_normal((n, h)).astype(dtype) if with_hx else np.zeros((n, h), dtype)
    c0 = rng.standard_normal((n, h)).astype(dtype) if with_hx else np.zeros((n, h), dtype)
    stats = bnlstm_stats(m)
    ref_out, ref_h, ref_c = oracle_bnlstm(x, h0, c0, bnlstm_params(m), stats, True, momentum=0.3)
    hx = (tn.tensor(h0[None]), tn.tensor(c0[None])) if with_hx else None
    out, (hn, cn) = m(tn.tensor(x), hx)
    tol = 2e-4 if dtype == np.float32 else 1e-10
    assert out.shape == (t, n, h) and hn.shape == (1, n, h) and cn.shape == (1, n, h)
    np.testing.assert_allclose(out.data, ref_out, atol=tol, rtol=tol)
    np.testing.assert_allclose(hn.data[0], ref_h, atol=tol, rtol=tol)
    np.testing.assert_allclose(cn.data[0], ref_c, atol=tol, rtol=tol)
    got = bnlstm_stats(m)
    for k in stats:
        for a, b in zip(got[k], stats[k]):
            np.testing.assert_allclose(a, b, atol=tol, rtol=tol)


@FAST
@given(t=st.integers(1, 6), n=st.integers(1, 3), i=st.integers(1, 3), h=st.integers(1, 3),
       length=st.integers(1, 3), batch_first=st.booleans(), seed=st.integers(0, 2**31))
def test_bnlstm_eval_forward_uses_per_step_running_stats(t, n, i, h, length, batch_first, seed):
    rng = np.random.default_rng(seed)
    m = BNLSTM(i, h, max_length=length, batch_first=batch_first, dtype=np.float64).eval()
    randomize(m, rng)
    for k in ("ih", "hh", "c"):
        getattr(m, f"bn_{k}_running_mean").data[...] = rng.normal(0, 1, (length, getattr(m, f"bn_{k}_running_mean").shape[1]))
        getattr(m, f"bn_{k}_running_var").data[...] = rng.uniform(0.2, 3, getattr(m, f"bn_{k}_running_var").shape)
    before = bnlstm_stats(m)
    x = rng.standard_normal((t, n, i))
    ref_out, ref_h, ref_c = oracle_bnlstm(x, np.zeros((n, h)), np.zeros((n, h)), bnlstm_params(m),
                                          bnlstm_stats(m), False)
    out, (hn, cn) = m(tn.tensor(x.transpose(1, 0, 2).copy() if batch_first else x))
    if batch_first:
        ref_out = ref_out.transpose(1, 0, 2)
    np.testing.assert_allclose(out.data, ref_out, atol=1e-12, rtol=1e-10)
    np.testing.assert_allclose(cn.data[0], ref_c, atol=1e-12, rtol=1e-10)
    for k, v in bnlstm_stats(m).items():
        np.testing.assert_array_equal(v[0], before[k][0])


def test_bnlstm_keeps_separate_statistics_per_step():
    rng = np.random.default_rng(1)
    m = BNLSTM(2, 3, max_length=4, momentum=1.0, dtype=np.float64)
    x = rng.standard_normal((4, 16, 2)) * np.array([1, 2, 3, 4])[:, None, None] + np.arange(4)[:, None, None]
    m(tn.tensor(x))
    mean, var = m.bn_ih_running_mean.data, m.bn_ih_running_var.data
    for t in range(4):
        wx = x[t] @ m.weight_ih.data.T
        np.testing.assert_allclose(mean[t], wx.mean(0), atol=1e-12)
        np.testing.assert_allclose(var[t], wx.var(0, ddof=1), rtol=1e-10)
    assert not np.allclose(mean[0], mean[1]) and not np.allclose(var[2], var[3])
    assert not np.allclose(m.bn_c_running_mean.data[1], m.bn_c_running_mean.data[2])
    # step 0 reads h_0 = 0, so its hidden-to-hidden batch statistics are exactly zero
    np.testing.assert_array_equal(m.bn_hh_running_mean.data[0], 0)
    np.testing.assert_array_equal(m.bn_hh_running_var.data[0], 0)


def test_bnlstm_beyond_max_length_uses_last_step_statistics():
    rng = np.random.default_rng(2)
    m = BNLSTM(2, 3, max_length=2, dtype=np.float64)
    randomize(m, rng)
    m.eval()
    x = rng.standard_normal((5, 3, 2))
    out = m(tn.tensor(x))[0].data.copy()
    for k in ("ih", "hh", "c"):
        getattr(m, f"bn_{k}_running_mean").data[0] += 1.0
    shifted_row0 = m(tn.tensor(x))[0].data
    # the first step reads row 0; the others (1 .. 4) read row 1 only, but inherit step 0's change
    assert not np.allclose(shifted_row0[0], out[0])
    for k in ("ih", "hh", "c"):
        getattr(m, f"bn_{k}_running_mean").data[0] -= 1.0
        getattr(m, f"bn_{k}_running_var").data[1] *= 4.0
    shifted_row1 = m(tn.tensor(x))[0].data
    np.testing.assert_array_equal(shifted_row1[0], out[0])
    assert all(not np.allclose(shifted_row1[t], out[t]) for t in range(1, 5))
    # a 5-step sequence equals the oracle where steps 2..4 reuse row 1
    ref, _, _ = oracle_bnlstm(x, np.zeros((3, 3)), np.zeros((3, 3)), bnlstm_params(m), bnlstm_stats(m), False)
    np.testing.assert_allclose(shifted_row1, ref, atol=1e-12)


def test_bnlstm_training_beyond_max_length_updates_last_row_each_extra_step():
    rng = np.random.default_rng(3)
    m = BNLSTM(2, 2, max_length=1, momentum=0.5, dtype=np.float64)
    x = rng.standard_normal((3, 5, 2))
    m(tn.tensor(x))
    expected = 0.0
    for t in range(3):
        expected = 0.5 * expected + 0.5 * (x[t] @ m.weight_ih.data.T).mean(0)
    np.testing.assert_allclose(m.bn_ih_running_mean.data[0], expected, atol=1e-12)


def test_bnlstm_init_and_state_dict():
    tn.manual_seed(0)
    m = BNLSTM(3, 4, max_length=6)
    sd = m.state_dict()
    assert list(sd) == ["weight_ih", "weight_hh", "bias", "bn_ih_weight", "bn_hh_weight", "bn_c_weight",
                        "bn_c_bias", "bn_ih_running_mean", "bn_ih_running_var", "bn_hh_running_mean",
                        "bn_hh_running_var", "bn_c_running_mean", "bn_c_running_var",
                        "num_batches_tracked"]
    assert sd["bn_ih_running_mean"].shape == (6, 16) and sd["bn_c_running_var"].shape == (6, 4)
    np.testing.assert_array_equal(sd["bn_ih_weight"], np.float32(0.1))
    np.testing.assert_array_equal(sd["bn_c_weight"], np.float32(0.1))
    np.testing.assert_array_equal(sd["bn_c_bias"], 0)
    np.testing.assert_array_equal(sd["bias"], np.repeat([0, 1, 0, 0], 4))
    for g in range(4):
        block = sd["weight_hh"][4 * g:4 * g + 4].astype(np.float64)
        np.testing.assert_allclose(block @ block.T, np.eye(4), atol=1e-6)
    assert np.abs(sd["weight_ih"]).max() <= 0.5
    assert BNLSTM(3, 4, 6, gamma_init=0.5).bn_hh_weight.data[0] == np.float32(0.5)


# ---- LN-LSTM -------------------------------------------------------------------

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
    with pytest.raises(ValueError, match="Expected input to be 3D"):
        m(tn.tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match="input_size"):
        m(tn.tensor(np.zeros((2, 2, 5), np.float32)))


def test_bnlstm_momentum_none_is_a_cumulative_average():
    rng = np.random.default_rng(3)
    m = BNLSTM(2, 3, max_length=2, momentum=None)
    batches = [rng.standard_normal((2, 4, 2)).astype(np.float32) for _ in range(3)]
    means = []
    for x in batches:
        m(tn.tensor(x))
        means.append((x[0].astype(np.float64) @ m.weight_ih.data.T.astype(np.float64)).mean(axis=0))
    np.testing.assert_allclose(m.bn_ih_running_mean.data[0], np.mean(means, axis=0), rtol=1e-5,
                               atol=1e-6)


def test_permuted_pixels_use_one_fixed_order():
    x = np.arange(2 * 1 * 3 * 4, dtype=np.float32).reshape(2, 1, 3, 4)
    perm = pixel_permutation(12)
    assert sorted(perm) == list(range(12)) and list(perm) != list(range(12))
    np.testing.assert_array_equal(perm, pixel_permutation(12))
    seq = image_to_sequence(tn.tensor(x), pixels=True, permuted=True).data
    np.testing.assert_array_equal(seq[1, :, 0], x[1, 0].reshape(-1)[perm])


# ---- gradients ----------------------------------------------------------------

@FAST
@given(t=TINY, n=TINY, i=TINY, h=TINY, seed=st.integers(0, 2**31))
def test_lstm_gradcheck_input_state_and_every_parameter(t, n, i, h, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in
              ((t, n, i), (n, h), (n, h), (4 * h, i), (4 * h, h), (4 * h,), (4 * h,))]

    def fn(x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        hs, hn, cn = lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh)
        return flat(F.stack(hs), hn, cn)

    gradcheck(fn, arrays)


def test_lstm_module_gradcheck_two_layers_batch_first():
    rng = np.random.default_rng(4)
    m = LSTM(2, 3, num_layers=2, batch_first=True, dtype=np.float64)
    names = [k for k, _ in m.named_parameters()]
    arrays = [rng.standard_normal((2, 3, 2))] + [p.data.copy() for p in m.parameters()]

    def fn(x, *params):
        for k, p in zip(names, params):
            m._parameters[k] = p
        out, (hn, cn) = m(x)
        return flat(out, hn, cn)

    gradcheck(fn, arrays)


@FAST
@given(t=TINY, n=TINY, i=TINY, h=TINY, training=st.booleans(), seed=st.integers(0, 2**31))
def test_bnlstm_gradcheck_input_state_and_every_parameter(t, n, i, h, training, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in
              ((t, n, i), (n, h), (n, h), (4 * h, i), (4 * h, h), (4 * h,))]
    arrays += [rng.uniform(0.5, 1.5, 4 * h), rng.uniform(0.5, 1.5, 4 * h),
               rng.uniform(0.5, 1.5, h), rng.standard_normal(h)]
    length = t - 1 if t > 1 else 1
    stats = None if training else tuple(
        a for c in (4 * h, 4 * h, h) for a in (rng.standard_normal((length, c)), rng.uniform(0.5, 2, (length, c))))

    def fn(*args):
        hs, hn, cn = bn_lstm_layer(*args, running_stats=stats, training=training)
        return flat(F.stack(hs), hn, cn)

    gradcheck(fn, arrays, atol=1e-5, rtol=1e-3)


# ---- torch parity -------------------------------------------------------------

@settings(max_examples=6, deadline=None)
@given(t=st.integers(1, 5), n=st.integers(1, 4), i=st.integers(1, 6), h=st.integers(1, 6),
       layers=st.integers(1, 3), bias=st.booleans(), batch_first=st.booleans(), with_hx=st.booleans(),
       seed=st.integers(0, 2**31))
def test_lstm_matches_torch(t, n, i, h, layers, bias, batch_first, with_hx, seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    m = LSTM(i, h, num_layers=layers, bias=bias, batch_first=batch_first)
    ref = torch.nn.LSTM(i, h, num_layers=layers, bias=bias, batch_first=batch_first)
    with torch.no_grad():
        for k, p in ref.named_parameters():
            p.copy_(torch.from_numpy(getattr(m, k).data))
    shape = (n, t, i) if batch_first else (t, n, i)
    x = rng.standard_normal(shape).astype(np.float32)
    hx = [rng.standard_normal((layers, n, h)).astype(np.float32) for _ in range(2)]
    u = [rng.standard_normal(s).astype(np.float32) for s in (shape[:2] + (h,), (layers, n, h), (layers, n, h))]

    xt = tn.tensor(x, requires_grad=True)
    hxt = tuple(tn.tensor(a, requires_grad=True) for a in hx)
    out, (hn, cn) = m(xt, hxt if with_hx else None)
    ((out * tn.tensor(u[0])).sum() + (hn * tn.tensor(u[1])).sum() + (cn * tn.tensor(u[2])).sum()).backward()

    xr = torch.tensor(x, requires_grad=True)
    hxr = tuple(torch.tensor(a, requires_grad=True) for a in hx)
    out_r, (hn_r, cn_r) = ref(xr, hxr if with_hx else None)
    ((out_r * torch.from_numpy(u[0])).sum() + (hn_r * torch.from_numpy(u[1])).sum()
     + (cn_r * torch.from_numpy(u[2])).sum()).backward()

    close = dict(atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(out.data, out_r.detach().numpy(), **close)
    np.testing.assert_allclose(hn.data, hn_r.detach().numpy(), **close)
    np.testing.assert_allclose(cn.data, cn_r.detach().numpy(), **close)
    np.testing.assert_allclose(xt.grad.data, xr.grad.numpy(), **close)
    if with_hx:
        for a, b in zip(hxt, hxr):
            np.testing.assert_allclose(a.grad.data, b.grad.numpy(), **close)
    for k, p in ref.named_parameters():
        np.testing.assert_allclose(getattr(m, k).grad.data, p.grad.numpy(), err_msg=k, **close)
    assert list(m.state_dict()) == list(ref.state_dict())


# ---- errors -------------------------------------------------------------------

def test_lstm_errors_name_the_problem():
    m = LSTM(3, 2)
    with pytest.raises(ValueError, match="2D or 3D"):
        m(tn.tensor(np.zeros((1, 2, 2, 3), np.float32)))
    with pytest.raises(ValueError, match="input_size. Expected 3, got 4"):
        m(tn.tensor(np.zeros((2, 2, 4), np.float32)))
    with pytest.raises(ValueError, match="int64"):
        m(tn.tensor(np.zeros((2, 2, 3), np.int64)))
    with pytest.raises(ValueError, match="float16"):
        m(tn.tensor(np.zeros((2, 2, 3), np.float16)))
    with pytest.raises(ValueError, match="float64 differs"):
        m(tn.tensor(np.zeros((2, 2, 3), np.float64)))
    with pytest.raises(ValueError, match=r"h_0 size \(1, 2, 2\)"):
        m(tn.tensor(np.zeros((2, 2, 3), np.float32)),
          (tn.tensor(np.zeros((1, 3, 2), np.float32)), tn.tensor(np.zeros((1, 2, 2), np.float32))))
    with pytest.raises(ValueError, match="pair"):
        m(tn.tensor(np.zeros((2, 2, 3), np.float32)), tn.tensor(np.zeros((1, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="sequence length"):
        m(tn.tensor(np.zeros((0, 2, 3), np.float32)))
    with pytest.raises(ValueError, match="hidden_size"):
        LSTM(3, 0)
    with pytest.raises(ValueError, match="num_layers"):
        LSTM(3, 2, num_layers=0)
    with pytest.raises(ValueError, match="int32"):
        LSTM(3, 2, dtype=np.int32)


def test_bnlstm_errors_name_the_problem():
    m = BNLSTM(3, 2, max_length=4)
    with pytest.raises(ValueError, match="3D"):
        m(tn.tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match="Expected 3, got 2"):
        m(tn.tensor(np.zeros((2, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="int64"):
        m(tn.tensor(np.zeros((2, 2, 3), np.int64)))
    with pytest.raises(ValueError, match="batch size 1"):
        m(tn.tensor(np.zeros((2, 1, 3), np.float32)))
    m.eval()(tn.tensor(np.zeros((2, 1, 3), np.float32)))
    with pytest.raises(ValueError, match="max_length"):
        BNLSTM(3, 2, max_length=0)
    with pytest.raises(ValueError, match="c_0 size"):
        m(tn.tensor(np.zeros((2, 2, 3), np.float32)),
          (tn.tensor(np.zeros((1, 2, 2), np.float32)), tn.tensor(np.zeros((2, 2), np.float32))))


# ---- the sequence classifier ---------------------------------------------------

def test_image_to_sequence_rows_and_pixels():
    x = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4)
    rows = image_to_sequence(tn.tensor(x)).data
    pixels = image_to_sequence(tn.tensor(x), pixels=True).data
    assert rows.shape == (2, 3, 8) and pixels.shape == (2, 12, 2)
    np.testing.assert_array_equal(rows[1, 2], np.concatenate([x[1, 0, 2], x[1, 1, 2]]))
    np.testing.assert_array_equal(pixels[1, 4 * 2 + 3], x[1, :, 2, 3])


@pytest.mark.parametrize("norm", ["bn", "ln", "none"])
@pytest.mark.parametrize("pixels", [False, True])
def test_sequence_model_shapes(norm, pixels):
    m = build_sequence_model((1, 8, 8), 10, norm, pixels=pixels, hidden_size=8)
    x = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    logits = m(tn.tensor(x))
    assert logits.shape == (3, 10)
    F.cross_entropy(logits, np.array([0, 1, 2])).backward()
    assert all(p.grad is not None for p in m.parameters())
    rnn = m.rnn
    assert rnn.input_size == (1 if pixels else 8)
    if norm == "bn":
        assert rnn.max_length == (64 if pixels else 8)


def test_sequence_model_errors():
    with pytest.raises(ValueError, match="unknown norm"):
        build_sequence_model((1, 8, 8), 10, "gn")
    with pytest.raises(ValueError, match="needs pixels=True"):
        build_sequence_model((1, 8, 8), 10, "ln", permuted=True)
    with pytest.raises(ValueError, match="max_length"):
        LSTMClassifier(8, norm="bn")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        build_sequence_model((8, 8), 10, "bn")
    with pytest.raises(ValueError, match="images"):
        LSTMClassifier(8, norm="none")(tn.tensor(np.zeros((2, 8), np.float32)))


def test_bn_lstm_classifier_learns_digits():
    from tinynorm.data import DataLoader, load_digits
    from tinynorm.optim import Adam
    tn.manual_seed(0)
    (xtr, ytr), (xte, yte) = load_digits("train"), load_digits("test")
    m = build_sequence_model((1, 8, 8), 10, "bn", hidden_size=64)
    opt = Adam(m.parameters(), lr=1e-2)
    loader = DataLoader((xtr, ytr), batch_size=32, shuffle=True, drop_last=True, seed=0)
    for _ in range(3):
        for xb, yb in loader:
            loss = F.cross_entropy(m(tn.tensor(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    m.eval()
    with tn.no_grad():
        acc = (m(tn.tensor(xte)).data.argmax(1) == yte).mean()
    assert acc > 0.8, acc


def test_bnlstm_cumulative_average_survives_a_state_dict_round_trip():
    """momentum=None averages over every batch seen; num_batches_tracked is a buffer, so a reload
    continues the count instead of restarting it (a restarted count would overwrite the averages)."""
    rng = np.random.default_rng(0)
    batches = [tn.tensor(rng.standard_normal((4, 3, 2)).astype(np.float32)) for _ in range(3)]
    tn.manual_seed(0)
    whole = BNLSTM(2, 3, 4, momentum=None)
    for x in batches:
        whole(x)
    tn.manual_seed(0)
    first = BNLSTM(2, 3, 4, momentum=None)
    for x in batches[:2]:
        first(x)
    resumed = BNLSTM(2, 3, 4, momentum=None)
    resumed.load_state_dict(first.state_dict())
    resumed(batches[2])
    assert int(resumed.num_batches_tracked.data) == 3
    for a, b in zip(whole.running_stats(), resumed.running_stats()):
        np.testing.assert_array_equal(a, b)
