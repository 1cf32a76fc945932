"""LSTM and the sequence classifier: a naive float64 loop oracle, gradients, torch parity, errors.

BN-LSTM's tests are in test_bn_lstm.py and LN-LSTM's in test_ln_lstm.py; the three share the
cell of tests/oracles/lstm.py."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
import tinynorm.functional as F
from tinynorm.nn.lstm import LSTM, lstm_layer
from tinynorm.sequence_models import (LSTMClassifier, build_sequence_model, image_to_sequence,
                                      pixel_permutation)
from tinynorm.testing import gradcheck

from oracles.lstm import assert_inputs_refused, flat, oracle_lstm

FAST = settings(max_examples=8, deadline=None)
TINY = st.integers(2, 3)


# ---- helpers ------------------------------------------------------------------

def lstm_params(m):
    return [tuple(getattr(m, f"{w}_l{k}").data if m.bias or w.startswith("weight") else None
                  for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            for k in range(m.num_layers)]


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
    assert_inputs_refused(m, [((1, 2, 2, 3), np.float32, "2D or 3D"),
                              ((2, 2, 4), np.float32, "input_size. Expected 3, got 4"),
                              ((2, 2, 3), np.int64, "int64"),
                              ((2, 2, 3), np.float16, "float16"),
                              ((2, 2, 3), np.float64, "float64 differs")])
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


def test_permuted_pixels_use_one_fixed_order():
    x = np.arange(2 * 1 * 3 * 4, dtype=np.float32).reshape(2, 1, 3, 4)
    perm = pixel_permutation(12)
    assert sorted(perm) == list(range(12)) and list(perm) != list(range(12))
    np.testing.assert_array_equal(perm, pixel_permutation(12))
    seq = image_to_sequence(tn.tensor(x), pixels=True, permuted=True).data
    np.testing.assert_array_equal(seq[1, :, 0], x[1, 0].reshape(-1)[perm])
