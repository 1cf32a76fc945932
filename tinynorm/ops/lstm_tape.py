"""The LSTM layers as compositions of tape ops (matmul, sigmoid, tanh, slicing, batch_norm,
layer_norm), one small op at a time per step: the reference path of the fused layers of
:mod:`tinynorm.ops.lstm`, the path of GPU arrays, and their second order (every op here has
one). The formulas are in the docstrings of :func:`tinynorm.nn.lstm.lstm_layer`,
:func:`~tinynorm.nn.lstm.bn_lstm_layer` and :func:`~tinynorm.nn.lstm.ln_lstm_layer`.
"""
from .. import functional as F
from ..tensor import Tensor


def _gates(gates, c, h_size):
    """One cell update from pre-activations ``gates`` (N, 4H) in order i, f, g, o."""
    sig = F.sigmoid(gates)
    i, f, o = sig[:, :h_size], sig[:, h_size:2 * h_size], sig[:, 3 * h_size:]
    g = F.tanh(gates[:, 2 * h_size:3 * h_size])
    return o, f * c + i * g


def _steps(input):
    """The list of per-step tensors (N, F) of a time-major (T, N, F) tensor, or a list as is."""
    if isinstance(input, (list, tuple)):
        return list(input)
    return [input[t] for t in range(input.shape[0])]


def lstm_tape(input, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """:func:`tinynorm.nn.lstm.lstm_layer` from tape ops."""
    h_size = weight_hh.shape[1]
    w_ih_t, w_hh_t = weight_ih.T, weight_hh.T
    bias = None
    if bias_ih is not None:
        bias = bias_ih + bias_hh if bias_hh is not None else bias_ih
    elif bias_hh is not None:
        bias = bias_hh
    h, c, hs = h0, c0, []
    for x_t in _steps(input):
        gates = x_t @ w_ih_t + h @ w_hh_t
        if bias is not None:
            gates = gates + bias
        o, c = _gates(gates, c, h_size)
        h = o * F.tanh(c)
        hs.append(h)
    return hs, h, c


def bn_lstm_tape(input, h0, c0, weight_ih, weight_hh, bias, bn_ih_weight, bn_hh_weight,
                 bn_c_weight, bn_c_bias, running_stats=None, training=True, momentum=0.1,
                 eps=1e-5):
    """:func:`tinynorm.nn.lstm.bn_lstm_layer` from tape ops."""
    h_size = weight_hh.shape[1]
    w_ih_t, w_hh_t = weight_ih.T, weight_hh.T
    rows = None if running_stats is None else running_stats[0].shape[0]

    def bn(x, which, t, weight, b):
        if running_stats is None:
            mean = var = None
        else:
            s = min(t, rows - 1)
            mean = Tensor(running_stats[2 * which][s])
            var = Tensor(running_stats[2 * which + 1][s])
        return F.batch_norm(x, mean, var, weight, b, training or mean is None, momentum, eps)

    h, c, hs = h0, c0, []
    for t, x_t in enumerate(_steps(input)):
        gates = (bn(x_t @ w_ih_t, 0, t, bn_ih_weight, None)
                 + bn(h @ w_hh_t, 1, t, bn_hh_weight, None) + bias)
        o, c = _gates(gates, c, h_size)
        h = o * F.tanh(bn(c, 2, t, bn_c_weight, bn_c_bias))
        hs.append(h)
    return hs, h, c


def ln_lstm_tape(input, h0, c0, weight_ih, weight_hh, bias, ln_ih_weight, ln_ih_bias,
                 ln_hh_weight, ln_hh_bias, ln_c_weight, ln_c_bias, eps=1e-5):
    """:func:`tinynorm.nn.lstm.ln_lstm_layer` from tape ops."""
    h_size = weight_hh.shape[1]
    w_ih_t, w_hh_t = weight_ih.T, weight_hh.T
    h, c, hs = h0, c0, []
    for x_t in _steps(input):
        gates = (F.layer_norm(x_t @ w_ih_t, (4 * h_size,), ln_ih_weight, ln_ih_bias, eps)
                 + F.layer_norm(h @ w_hh_t, (4 * h_size,), ln_hh_weight, ln_hh_bias, eps) + bias)
        o, c = _gates(gates, c, h_size)
        h = o * F.tanh(F.layer_norm(c, (h_size,), ln_c_weight, ln_c_bias, eps))
        hs.append(h)
    return hs, h, c
