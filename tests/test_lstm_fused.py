"""The fused LSTM and BN-LSTM layers (tinynorm/ops/lstm.py, one tape node per sequence): the
float64 loop oracles, forward and backward through time, finite differences, agreement with
the tape-op path, running statistics, eval mode, second order and the arguments that go to
the tape path."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
import tinynorm.functional as F
from tinynorm.autograd import grad
from tinynorm.ops.lstm import bn_lstm_sequence, lstm_sequence
from tinynorm.ops.lstm_tape import bn_lstm_tape, lstm_tape
from tinynorm.testing import gradcheck, gradgradcheck

from oracles.lstm import oracle_bnlstm, oracle_lstm, oracle_lstm_backward

FAST = settings(max_examples=10, deadline=None)
TINY = st.integers(1, 3)
DTYPES = st.sampled_from([np.float32, np.float64])
MODES = st.sampled_from(["train", "eval", "batch"])


def leaves(arrays, dtype):
    return [None if a is None else tn.tensor(np.asarray(a, dtype), requires_grad=True)
            for a in arrays]


def lstm_arrays(rng, t, n, i, h, bias=True):
    arrays = [rng.standard_normal(s) for s in ((t, n, i), (n, h), (n, h), (4 * h, i), (4 * h, h))]
    return arrays + ([rng.standard_normal(4 * h) * 0.5 for _ in range(2)] if bias else [None, None])


def bn_arrays(rng, t, n, i, h):
    arrays = [rng.standard_normal(s) for s in ((t, n, i), (n, h), (n, h), (4 * h, i), (4 * h, h),
                                               (4 * h,))]
    return arrays + [rng.uniform(0.5, 1.5, 4 * h), rng.uniform(0.5, 1.5, 4 * h),
                     rng.uniform(0.5, 1.5, h), rng.standard_normal(h)]


def bn_stats(rng, length, h, dtype):
    return tuple(np.asarray(a, dtype) for c in (4 * h, 4 * h, h)
                 for a in (rng.standard_normal((length, c)), rng.uniform(0.5, 2, (length, c))))


def bn_mode(mode, stats):
    """(running_stats, training) of a mode: train updates ``stats``, eval reads them, batch has none."""
    return {"train": (stats, True), "eval": (stats, False), "batch": (None, False)}[mode]


def packed_tape(layer):
    """A tape-path layer with the fused layer's packed output (h_1 .. h_T, then c_T)."""
    def run(*args):
        hs, _, c = layer(*args)
        return F.stack(list(hs) + [c])
    return run


def tol(dtype):
    return dict(atol=2e-4, rtol=2e-4) if dtype == np.float32 else dict(atol=1e-10, rtol=1e-10)


# ---- the LSTM against the loop oracle, forward and backward through time ---------------

@FAST
@given(t=st.integers(1, 5), n=st.integers(1, 4), i=st.integers(1, 4), h=st.integers(1, 4),
       bias=st.booleans(), dtype=DTYPES, seed=st.integers(0, 2**31))
def test_fused_lstm_matches_the_bptt_oracle(t, n, i, h, bias, dtype, seed):
    rng = np.random.default_rng(seed)
    arrays = lstm_arrays(rng, t, n, i, h, bias)
    args = leaves(arrays, dtype)
    y = lstm_sequence(*args)
    assert type(y._node.fn).__name__ == "LSTMSequence"
    ref_out, _, ref_c = oracle_lstm(np.asarray(arrays[0], dtype), [np.asarray(arrays[1], dtype)],
                                    [np.asarray(arrays[2], dtype)],
                                    [tuple(None if a is None else np.asarray(a, dtype)
                                           for a in arrays[3:])])
    assert y.dtype == dtype and y.shape == (t + 1, n, h)
    np.testing.assert_allclose(y.data[:t], ref_out, **tol(dtype))
    np.testing.assert_allclose(y.data[t], ref_c[0], **tol(dtype))
    cot = rng.standard_normal((t + 1, n, h))
    y.backward(cot.astype(dtype))
    c64 = [None if a is None else np.asarray(a, dtype).astype(np.float64) for a in arrays]
    b = None if not bias else c64[5] + c64[6]
    ref = oracle_lstm_backward(*c64[:5], b, np.asarray(cot, dtype)[:t], np.asarray(cot, dtype)[t])
    for k, (leaf, want) in enumerate(zip(args, ref + (ref[5],))):
        if leaf is not None:
            np.testing.assert_allclose(leaf.grad.data, want, err_msg=f"input {k}", **tol(dtype))


@FAST
@given(t=TINY, n=TINY, i=TINY, h=TINY, bias=st.booleans(), seed=st.integers(0, 2**31))
def test_fused_lstm_gradcheck(t, n, i, h, bias, seed):
    arrays = lstm_arrays(np.random.default_rng(seed), t, n, i, h, bias)
    if not bias:
        gradcheck(lambda *a: lstm_sequence(*a), arrays[:5])
    else:
        gradcheck(lambda *a: lstm_sequence(*a), arrays)


# ---- the BN-LSTM against the loop oracle, finite differences -----------------------------

@FAST
@given(t=st.integers(1, 5), n=st.integers(2, 4), i=st.integers(1, 3), h=st.integers(1, 4),
       length=st.integers(1, 4), mode=MODES, dtype=DTYPES, seed=st.integers(0, 2**31))
def test_fused_bn_lstm_matches_the_oracle_and_updates_running_stats(t, n, i, h, length, mode, dtype,
                                                                   seed):
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a, dtype) for a in bn_arrays(rng, t, n, i, h)]
    stats, training = bn_mode(mode, bn_stats(rng, length, h, dtype))
    oracle_stats = None if stats is None else {
        k: [stats[2 * j].astype(np.float64), stats[2 * j + 1].astype(np.float64)]
        for j, k in enumerate(("ih", "hh", "c"))}
    names = ("weight_ih", "weight_hh", "bias", "bn_ih_weight", "bn_hh_weight", "bn_c_weight", "bn_c_bias")
    p = {k: a.astype(np.float64) for k, a in zip(names, arrays[3:])}
    ref_out, _, ref_c = oracle_bnlstm(arrays[0], arrays[1], arrays[2], p, oracle_stats,
                                      training or stats is None, momentum=0.3)
    y = bn_lstm_sequence(*leaves(arrays, dtype), running_stats=stats, training=training,
                         momentum=0.3)
    np.testing.assert_allclose(y.data[:t], ref_out, **tol(dtype))
    np.testing.assert_allclose(y.data[t], ref_c, **tol(dtype))
    if stats is not None:
        for j, k in enumerate(("ih", "hh", "c")):
            for s in range(2):
                np.testing.assert_allclose(stats[2 * j + s], oracle_stats[k][s], **tol(dtype))


@FAST
@given(t=TINY, n=st.integers(2, 3), i=TINY, h=TINY, mode=MODES, seed=st.integers(0, 2**31))
def test_fused_bn_lstm_gradcheck(t, n, i, h, mode, seed):
    rng = np.random.default_rng(seed)
    arrays = bn_arrays(rng, t, n, i, h)
    stats, training = bn_mode(mode, bn_stats(rng, max(t - 1, 1), h, np.float64))
    if stats is not None:
        stats = tuple(s.copy() for s in stats)

    def fn(*a):
        frozen = None if stats is None else tuple(s.copy() for s in stats)
        return bn_lstm_sequence(*a, running_stats=frozen, training=training)

    gradcheck(fn, arrays, atol=1e-5, rtol=1e-3)


# ---- agreement with the tape-op path ---------------------------------------------------

def run_both(fused, tape, arrays, dtype, cot):
    """Outputs and input gradients of the fused and tape layers on the same arrays and cotangent."""
    got = []
    for layer in (fused, tape):
        args = leaves(arrays, dtype)
        y = layer(*args)
        y.backward(cot.astype(dtype))
        got.append((y.data, [None if a is None or a.grad is None else a.grad.data for a in args]))
    return got


@FAST
@given(t=st.integers(1, 4), n=st.integers(2, 4), i=TINY, h=TINY, length=TINY, mode=MODES,
       dtype=DTYPES, seed=st.integers(0, 2**31))
def test_fused_layers_agree_with_the_tape_path(t, n, i, h, length, mode, dtype, seed):
    rng = np.random.default_rng(seed)
    cot = rng.standard_normal((t + 1, n, h))
    (y, gs), (y_ref, gs_ref) = run_both(lstm_sequence, packed_tape(lstm_tape),
                                        lstm_arrays(rng, t, n, i, h), dtype, cot)
    np.testing.assert_allclose(y, y_ref, **tol(dtype))
    for a, b in zip(gs, gs_ref):
        np.testing.assert_allclose(a, b, **tol(dtype))
    stats = bn_stats(rng, length, h, dtype)
    fused_stats, tape_stats = tuple(s.copy() for s in stats), tuple(s.copy() for s in stats)
    (fs, training), (ts, _) = bn_mode(mode, fused_stats), bn_mode(mode, tape_stats)
    (y, gs), (y_ref, gs_ref) = run_both(
        lambda *a: bn_lstm_sequence(*a, running_stats=fs, training=training),
        packed_tape(lambda *a: bn_lstm_tape(*a, running_stats=ts, training=training)),
        bn_arrays(rng, t, n, i, h), dtype, cot)
    np.testing.assert_allclose(y, y_ref, **tol(dtype))
    for a, b in zip(gs, gs_ref):
        np.testing.assert_allclose(a, b, **tol(dtype))
    for a, b in zip(fused_stats, tape_stats):
        np.testing.assert_allclose(a, b, **tol(dtype))


def run_both_from_zero(fused, tape, arrays, dtype, cot, h0_grad):
    """:func:`run_both` from h0 = 0 (a leaf when ``h0_grad``, a constant otherwise)."""
    got = []
    for layer in (fused, tape):
        args = leaves(arrays, dtype)
        args[1] = tn.tensor(np.zeros(args[1].shape, dtype), requires_grad=h0_grad)
        y = layer(*args)
        y.backward(cot.astype(dtype))
        got.append((y.data, [None if a is None or a.grad is None else a.grad.data for a in args]))
    return got


def assert_same(got, dtype):
    (y, gs), (y_ref, gs_ref) = got
    np.testing.assert_allclose(y, y_ref, **tol(dtype))
    for a, b in zip(gs, gs_ref):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, **tol(dtype))


@FAST
@given(t=st.integers(1, 4), n=st.integers(2, 4), i=TINY, h=TINY, h0_grad=st.booleans(),
       dtype=DTYPES, seed=st.integers(0, 2**31))
def test_a_zero_start_skips_its_products_and_agrees(t, n, i, h, h0_grad, dtype, seed):
    rng = np.random.default_rng(seed)
    cot = rng.standard_normal((t + 1, n, h))
    arrays = lstm_arrays(rng, t, n, i, h)
    got = run_both_from_zero(lstm_sequence, packed_tape(lstm_tape), arrays, dtype, cot, h0_grad)
    assert_same(got, dtype)
    c64 = [np.asarray(a, dtype).astype(np.float64) for a in arrays]
    c64[1] = np.zeros_like(c64[1])
    ref = oracle_lstm_backward(*c64[:5], c64[5] + c64[6], np.asarray(cot, dtype)[:t],
                               np.asarray(cot, dtype)[t])
    for k in (0, 2, 3, 4, 5):
        np.testing.assert_allclose(got[0][1][k], ref[k], err_msg=f"input {k}", **tol(dtype))
    assert_same(run_both_from_zero(bn_lstm_sequence, packed_tape(bn_lstm_tape),
                                   bn_arrays(rng, t, n, i, h), dtype, cot, h0_grad), dtype)


@pytest.mark.parametrize("where", ["weight_hh", "cotangent"])
def test_a_zero_start_keeps_nans(where):
    rng = np.random.default_rng(3)
    cot = rng.standard_normal((4, 3, 2))
    for fused, tape, arrays in ((lstm_sequence, packed_tape(lstm_tape), lstm_arrays(rng, 3, 3, 2, 2)),
                                (bn_lstm_sequence, packed_tape(bn_lstm_tape), bn_arrays(rng, 3, 3, 2, 2))):
        if where == "weight_hh":
            arrays[4][1, 0] = np.nan
        else:
            cot[0, 1, 0] = np.nan
        (y, gs), (y_ref, gs_ref) = run_both_from_zero(fused, tape, arrays, np.float64, cot, True)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(y_ref))
        assert np.isnan(gs[4]).any()
        np.testing.assert_array_equal(np.isnan(gs[4]), np.isnan(gs_ref[4]))


def test_modules_run_one_fused_node_per_layer():
    x = tn.tensor(np.random.default_rng(0).standard_normal((5, 3, 2)), requires_grad=True)
    for m in (tn.nn.LSTM(2, 4, num_layers=2, dtype=np.float64),
              tn.nn.BNLSTM(2, 4, max_length=3, dtype=np.float64)):
        out, _ = m(x)
        assert out.grad_fn.next_functions[0][0].name() in ("LSTMSequenceBackward0",
                                                           "BNLSTMSequenceBackward0"), out.grad_fn


# ---- second order --------------------------------------------------------------------

def test_fused_layers_have_a_second_order():
    rng = np.random.default_rng(5)
    gradgradcheck(lambda *a: lstm_sequence(*a), lstm_arrays(rng, 2, 2, 2, 2), name="lstm")
    gradgradcheck(lambda *a: bn_lstm_sequence(*a), bn_arrays(rng, 2, 3, 2, 2), name="bn_lstm")


def test_second_order_updates_the_running_stats_once():
    tn.manual_seed(0)
    once, twice = tn.nn.BNLSTM(2, 3, 4, dtype=np.float64), tn.nn.BNLSTM(2, 3, 4, dtype=np.float64)
    twice.load_state_dict(once.state_dict())
    x = np.random.default_rng(1).standard_normal((3, 4, 2))
    once(tn.tensor(x))
    xt = tn.tensor(x, requires_grad=True)
    out, _ = twice(xt)
    (g,) = grad((out ** 2).sum(), xt, create_graph=True)
    (gg,) = grad((g ** 2).sum(), xt)
    assert np.all(np.isfinite(gg.data))
    for a, b in zip(once.running_stats(), twice.running_stats()):
        np.testing.assert_array_equal(a, b)


# ---- what goes to the tape path ----------------------------------------------------------

def test_a_list_of_steps_is_fused_and_matches():
    rng = np.random.default_rng(2)
    arrays = lstm_arrays(rng, 3, 2, 2, 2)
    x = tn.tensor(arrays[0])
    rest = [tn.tensor(a) for a in arrays[1:]]
    np.testing.assert_allclose(lstm_sequence([x[k] for k in range(3)], *rest).data,
                               lstm_sequence(x, *rest).data)


def test_arguments_the_fused_path_does_not_take_get_the_tape_paths_errors():
    f = lambda *s: tn.tensor(np.zeros(s))  # noqa: E731
    assert lstm_sequence(f(2, 3, 4), f(3, 5), f(3, 5), f(20, 3), f(20, 5)) is None
    with pytest.raises(ValueError, match="cannot be multiplied"):
        tn.nn.lstm.lstm_layer(f(2, 3, 4), f(3, 5), f(3, 5), f(20, 3), f(20, 5))
    bn = [f(2, 1, 2), f(1, 2), f(1, 2), f(8, 2), f(8, 2), f(8), f(8), f(8), f(2), f(2)]
    assert bn_lstm_sequence(*bn) is None
    with pytest.raises(ValueError, match="more than 1 value"):
        tn.nn.lstm.bn_lstm_layer(*bn)
    bn[0], bn[1], bn[2] = f(2, 3, 2), f(3, 2), f(3, 2)
    with pytest.raises(ValueError, match="eps"):
        bn_lstm_sequence(*bn, eps=-1.0)
    stats = tuple(np.zeros((2, c)) for c in (8, 8, 8, 8, 2, 2))
    with pytest.raises(ValueError, match="momentum"):
        bn_lstm_sequence(*bn, running_stats=stats, momentum=2.0)
    mixed = [tn.tensor(np.zeros((2, 3, 2), np.float32))] + bn[1:]
    assert bn_lstm_sequence(*mixed) is None
