"""BN-LSTM (Cooijmans et al. 2017): a naive float64 loop oracle written from docs/norms.md#bn-lstm,
per-step statistics, gradients, errors, training."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
import tinynorm.functional as F
from tinynorm.nn.lstm import BNLSTM, bn_lstm_layer
from tinynorm.sequence_models import build_sequence_model
from tinynorm.testing import gradcheck

from oracles.lstm import assert_inputs_refused, flat, oracle_bnlstm, randomize

FAST = settings(max_examples=8, deadline=None)
TINY = st.integers(2, 3)


# ---- helpers ------------------------------------------------------------------


BN_PARAMS = ("weight_ih", "weight_hh", "bias", "bn_ih_weight", "bn_hh_weight", "bn_c_weight", "bn_c_bias")


def bnlstm_params(m):
    return {k: getattr(m, k).data.astype(np.float64) for k in BN_PARAMS}


def bnlstm_stats(m):
    return {k: [getattr(m, f"bn_{k}_running_mean").data.astype(np.float64).copy(),
                getattr(m, f"bn_{k}_running_var").data.astype(np.float64).copy()]
            for k in ("ih", "hh", "c")}


# ---- forward against the oracle, per-step statistics ---------------------------

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


# ---- gradients ----------------------------------------------------------------

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


# ---- errors -------------------------------------------------------------------

def test_bnlstm_errors_name_the_problem():
    m = BNLSTM(3, 2, max_length=4)
    assert_inputs_refused(m, [((2, 3), np.float32, "3D"),
                              ((2, 2, 2), np.float32, "Expected 3, got 2"),
                              ((2, 2, 3), np.int64, "int64"),
                              ((2, 1, 3), np.float32, "batch size 1")])
    m.eval()(tn.tensor(np.zeros((2, 1, 3), np.float32)))
    with pytest.raises(ValueError, match="max_length"):
        BNLSTM(3, 2, max_length=0)
    with pytest.raises(ValueError, match="c_0 size"):
        m(tn.tensor(np.zeros((2, 2, 3), np.float32)),
          (tn.tensor(np.zeros((1, 2, 2), np.float32)), tn.tensor(np.zeros((2, 2), np.float32))))


# ---- training -----------------------------------------------------------------

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
