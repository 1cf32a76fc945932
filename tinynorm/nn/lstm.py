"""``LSTM`` (PyTorch's), ``BNLSTM`` (recurrent batch normalization) and ``LNLSTM`` (layer
normalization); each cell's formula is in its layer function's docstring
(:func:`lstm_layer`, :func:`bn_lstm_layer`, :func:`ln_lstm_layer`).

The LSTM and BN-LSTM layers run as one fused tape node over the whole sequence
(:mod:`tinynorm.ops.lstm`) on host arrays, and as compositions of tape ops
(:mod:`tinynorm.ops.lstm_tape`: matmul, sigmoid, tanh, slicing, stack, one step at a time)
on GPU arrays; the LN-LSTM always runs as the composition.
"""
import math

import numpy as np

from .. import checks, dtypes
from .. import functional as F
from .. import random
from ..backend import check_float_dtype, get_array_module
from ..tensor import Tensor, as_tensor
from ..ops.lstm import bn_lstm_sequence, lstm_sequence, unpack
from ..ops.lstm_tape import bn_lstm_tape, ln_lstm_tape, lstm_tape
from . import init
from .module import Module, Parameter

__all__ = ["LSTM", "BNLSTM", "LNLSTM", "lstm_layer", "bn_lstm_layer", "ln_lstm_layer"]


def lstm_layer(input, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """One LSTM layer (Hochreiter & Schmidhuber 1997; PyTorch's formulation and gate order
    i, f, g, o) over a time-major sequence::

        (i, f, g, o) = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
        h_t = sigmoid(o) * tanh(c_t)

    ``input``: (T, N, in) tensor or a list of T tensors (N, in); ``h0``, ``c0``:
    (N, H); weights as PyTorch's ``weight_ih_l{k}`` (4H, in), ``weight_hh_l{k}``
    (4H, H). Returns (list of T hidden states (N, H), h_T, c_T).
    """
    y = lstm_sequence(input, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh)
    if y is None:
        return lstm_tape(input, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh)
    return unpack(y)


def bn_lstm_layer(input, h0, c0, weight_ih, weight_hh, bias, bn_ih_weight, bn_hh_weight,
                  bn_c_weight, bn_c_bias, running_stats=None, training=True, momentum=0.1,
                  eps=1e-5):
    """One BN-LSTM layer (Cooijmans, Ballas, Laurent, Gulcehre & Courville 2016, "Recurrent
    Batch Normalization") over a time-major sequence, in LSTM's gate order::

        (i, f, g, o) = BN(W_hh h_{t-1}; gamma_h, 0) + BN(W_ih x_t; gamma_x, 0) + b
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
        h_t = sigmoid(o) * tanh(BN(c_t; gamma_c, beta_c))

    Every BN is :func:`tinynorm.functional.batch_norm` over the batch axis, with
    its own statistics per time step ``t < max_length`` (rows of the running
    buffers) and gammas shared across time (``BNLSTM`` starts them at 0.1 so that
    tanh does not saturate). Steps ``t >= max_length`` use row ``max_length - 1``:
    its running statistics in eval mode, and in training mode their own batch
    statistics, each of which also updates that row (so it tracks the tail of
    long sequences). Defaults: ``training=True``, ``momentum=0.1``, ``eps=1e-5``.

    ``running_stats``: None (batch statistics at every step) or six arrays
    ``(mean_ih, var_ih, mean_hh, var_hh, mean_c, var_c)`` of shape
    (max_length, 4H) for ih/hh and (max_length, H) for c; step t reads and, in
    training, updates row ``min(t, max_length - 1)``. Returns (list of T hidden
    states (N, H), h_T, c_T).
    """
    args = (input, h0, c0, weight_ih, weight_hh, bias, bn_ih_weight, bn_hh_weight, bn_c_weight,
            bn_c_bias, running_stats, training, momentum, eps)
    y = bn_lstm_sequence(*args)
    if y is None:
        return bn_lstm_tape(*args)
    return unpack(y)


def ln_lstm_layer(input, h0, c0, weight_ih, weight_hh, bias, ln_ih_weight, ln_ih_bias,
                  ln_hh_weight, ln_hh_bias, ln_c_weight, ln_c_bias, eps=1e-5):
    """One LN-LSTM layer (Ba, Kiros & Hinton 2016, "Layer Normalization", section 3.1) over
    a time-major sequence, in LSTM's gate order::

        (i, f, g, o) = LN(W_hh h_{t-1}; alpha_h, beta_h) + LN(W_ih x_t; alpha_x, beta_x) + b
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
        h_t = sigmoid(o) * tanh(LN(c_t; alpha_c, beta_c))

    Every LN is :func:`tinynorm.functional.layer_norm` over one sample's 4H gate
    pre-activations (or its H cell values), so nothing depends on the batch or
    the time step.

    ``input``: (T, N, in) tensor or a list of T tensors (N, in); ``h0``, ``c0``:
    (N, H); LN parameters (4H,) for the two gate LNs and (H,) for the cell's.
    Returns (list of T hidden states (N, H), h_T, c_T).
    """
    return ln_lstm_tape(input, h0, c0, weight_ih, weight_hh, bias, ln_ih_weight, ln_ih_bias,
                        ln_hh_weight, ln_hh_bias, ln_c_weight, ln_c_bias, eps)


def _layer_outputs(y, tape):
    """(output (T, N, H), h_n (1, N, H), c_n (1, N, H)) of one layer from its packed fused
    output ``y``, or, when ``y`` is None, from the tape path's ``tape()``."""
    if y is not None:
        steps = y.shape[0] - 1
        return y[:steps], y[steps - 1:steps], y[steps:]
    hs, h, c = tape()
    return F.stack(hs, dim=0), h.reshape((1,) + tuple(h.shape)), c.reshape((1,) + tuple(c.shape))


def _check_input(name, input, input_size, dtype, ranks):
    input = input if isinstance(input, Tensor) else as_tensor(input)
    if input.ndim not in ranks:
        want = " or ".join(f"{r}D" for r in ranks)
        raise ValueError(f"{name}: Expected input to be {want}, got {input.ndim}D "
                         f"of shape {tuple(input.shape)}")
    check_float_dtype(input.data, f"{name} input")
    if input.dtype != dtype:
        raise ValueError(f"{name}: input dtype {input.dtype} differs from the parameters' dtype "
                         f"{dtype}; convert one of them")
    if input.shape[-1] != input_size:
        raise ValueError(f"{name}: input.size(-1) must be equal to input_size. "
                         f"Expected {input_size}, got {input.shape[-1]}")
    return input


def _check_hidden(name, hx, shape, dtype, like):
    """``(h_0, c_0)`` of ``shape`` (zeros on ``like``'s device when ``hx`` is None), validated."""
    if hx is None:
        zeros = Tensor(get_array_module(like).zeros(shape, dtype=dtype))
        return zeros, zeros
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise ValueError(f"{name}: hx must be a pair (h_0, c_0)")
    out = []
    for what, t in zip(("h_0", "c_0"), hx):
        t = t if isinstance(t, Tensor) else as_tensor(t)
        if tuple(t.shape) != tuple(shape):
            raise ValueError(f"{name}: Expected hidden {what} size {tuple(shape)}, got {tuple(t.shape)}")
        if t.dtype != dtype:
            raise ValueError(f"{name}: hidden {what} dtype {t.dtype} differs from the parameters' dtype {dtype}")
        out.append(t)
    return tuple(out)


def _check_sizes(name, **sizes):
    for key, value in sizes.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: {key} must be a positive integer, got {value!r}")


class LSTM(Module):
    """Multi-layer LSTM with PyTorch's parameters, initialization, shapes and gate order.

    ``forward(input, hx=None)``: input (T, N, in) (or (N, T, in) with
    ``batch_first``, or unbatched (T, in)); ``hx = (h_0, c_0)``, each
    (num_layers, N, H) (or (num_layers, H) unbatched), zeros when omitted.
    Returns ``(output, (h_n, c_n))`` with output (T, N, H) (batch-first
    (N, T, H)). Every parameter starts Uniform(-1/sqrt(H), 1/sqrt(H)).
    ``dropout`` applies to the outputs of every layer but the last, in training.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, dtype=np.float32):
        dtype = dtypes.parameter(dtype, "LSTM")
        super().__init__()
        _check_sizes("LSTM", input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        checks.number(dropout, "LSTM: dropout", 0.0, 1.0)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        self.dtype = np.dtype(dtype)
        g = 4 * hidden_size
        for k in range(num_layers):
            fan = input_size if k == 0 else hidden_size
            setattr(self, f"weight_ih_l{k}", Parameter(np.empty((g, fan), dtype=dtype)))
            setattr(self, f"weight_hh_l{k}", Parameter(np.empty((g, hidden_size), dtype=dtype)))
            if bias:
                setattr(self, f"bias_ih_l{k}", Parameter(np.empty(g, dtype=dtype)))
                setattr(self, f"bias_hh_l{k}", Parameter(np.empty(g, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def forward(self, input, hx=None):
        input = _check_input("LSTM", input, self.input_size, self.dtype, (2, 3))
        unbatched = input.ndim == 2
        if unbatched:
            input = input.reshape(input.shape[0], 1, input.shape[1])
        elif self.batch_first:
            input = input.permute(1, 0, 2)
        if input.shape[0] < 1:
            raise ValueError("LSTM: the sequence length must be at least 1")
        n = input.shape[1]
        if unbatched:
            shape = (self.num_layers, self.hidden_size)
            h0, c0 = _check_hidden("LSTM", hx, shape, self.dtype, input.data)
            h0, c0 = h0.reshape(self.num_layers, 1, -1), c0.reshape(self.num_layers, 1, -1)
        else:
            h0, c0 = _check_hidden("LSTM", hx, (self.num_layers, n, self.hidden_size),
                                   self.dtype, input.data)
        layer_input, h_n, c_n = input, [], []
        for k in range(self.num_layers):
            b = (getattr(self, f"bias_ih_l{k}"), getattr(self, f"bias_hh_l{k}")) if self.bias else (None, None)
            args = (h0[k], c0[k], getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}"), *b)
            out, h, c = _layer_outputs(lstm_sequence(layer_input, *args),
                                       lambda: lstm_tape(layer_input, *args))
            h_n.append(h)
            c_n.append(c)
            if self.dropout and self.training and k < self.num_layers - 1:
                out = F.dropout(out, self.dropout, True)
            layer_input = out
        output = layer_input
        if self.num_layers == 1:
            h_n, c_n = h_n[0], c_n[0]
        else:
            h_n, c_n = F.cat(h_n, dim=0), F.cat(c_n, dim=0)
        if unbatched:
            return (output.reshape(output.shape[0], self.hidden_size),
                    (h_n.reshape(self.num_layers, self.hidden_size),
                     c_n.reshape(self.num_layers, self.hidden_size)))
        if self.batch_first:
            output = output.permute(1, 0, 2)
        return output, (h_n, c_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s


def _orthogonal_blocks(rows, cols, rng):
    """``rows // cols`` stacked square orthogonal blocks (QR of a Gaussian, signs fixed)."""
    blocks = []
    for _ in range(rows // cols):
        q, r = np.linalg.qr(rng.standard_normal((cols, cols)))
        blocks.append(q * np.sign(np.diag(r)))
    return np.concatenate(blocks, axis=0)


class _NormLSTM(Module):
    """What BNLSTM and LNLSTM share: one layer whose ``weight_ih`` (4H, in), ``weight_hh``
    (4H, H) and ``bias`` (4H,) are initialized as Cooijmans et al. 2016 do (``weight_hh``
    has orthogonal H x H blocks, one per gate; ``weight_ih`` is Uniform(-1/sqrt(H), 1/sqrt(H))
    as in ``LSTM``; ``bias`` is 0 except the forget gate's, ``forget_bias``), and forward's
    argument handling. ``forward(input, hx=None)``: input (T, N, in) (or (N, T, in) with
    ``batch_first``); hx = (h_0, c_0) each (1, N, H), zeros when omitted. Returns
    ``(output, (h_n, c_n))`` shaped as ``LSTM``'s with one layer.
    """

    _name = ""

    def _gate_parameters(self, dtype):
        g = 4 * self.hidden_size
        self.weight_ih = Parameter(np.empty((g, self.input_size), dtype=dtype))
        self.weight_hh = Parameter(np.empty((g, self.hidden_size), dtype=dtype))
        self.bias = Parameter(np.empty(g, dtype=dtype))

    def _reset_gate_parameters(self):
        h = self.hidden_size
        bound = 1.0 / math.sqrt(h)
        init.uniform_(self.weight_ih, -bound, bound)
        self.weight_hh.data[...] = _orthogonal_blocks(4 * h, h, random.default_generator())
        init.zeros_(self.bias)
        self.bias.data[h:2 * h] = self.forget_bias

    def _check_batch(self, n):
        """Refuse a batch size the layer cannot use (BN-LSTM in training)."""

    def forward(self, input, hx=None):
        input = _check_input(self._name, input, self.input_size, self.dtype, (3,))
        if self.batch_first:
            input = input.permute(1, 0, 2)
        t_len, n = input.shape[0], input.shape[1]
        if t_len < 1:
            raise ValueError(f"{self._name}: the sequence length must be at least 1")
        self._check_batch(n)
        h0, c0 = _check_hidden(self._name, hx, (1, n, self.hidden_size), self.dtype, input.data)
        output, h_n, c_n = self._layer(input, h0[0], c0[0])
        if self.batch_first:
            output = output.permute(1, 0, 2)
        return output, (h_n, c_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}" + self._repr_size()
        if self.batch_first:
            s += ", batch_first=True"
        return s + f", eps={self.eps}" + self._repr_rest()

    def _repr_size(self):
        return ""

    def _repr_rest(self):
        return ""


class BNLSTM(_NormLSTM):
    """One-layer LSTM with recurrent batch normalization (Cooijmans et al. 2016).

    Parameters: ``weight_ih`` (4H, in), ``weight_hh`` (4H, H), ``bias`` (4H,)
    (the only gate bias: the two gate BNs have no beta), ``bn_ih_weight`` and
    ``bn_hh_weight`` (4H,) = gamma_x, gamma_h, ``bn_c_weight`` / ``bn_c_bias``
    (H,) = gamma_c, beta_c. Buffers: ``bn_{ih,hh,c}_running_{mean,var}`` of
    shape (max_length, 4H or H), one row per time step. Gammas start at
    ``gamma_init`` (0.1), beta_c at 0.

    The cell is :func:`bn_lstm_layer` (the formula); weights and forward's arguments
    are ``_NormLSTM``'s (``forget_bias`` 1). Any T >= 1 (steps at or past
    ``max_length`` share the last row of statistics); training needs N > 1 (batch
    statistics). ``momentum=None`` makes the running statistics a cumulative average
    over the training forwards since the last ``reset_running_stats`` (as BN's).
    """

    _name = "BNLSTM"

    def __init__(self, input_size, hidden_size, max_length, batch_first=False, eps=1e-5,
                 momentum=0.1, gamma_init=0.1, forget_bias=1.0, dtype=np.float32):
        dtype = dtypes.parameter(dtype, "BNLSTM")
        super().__init__()
        _check_sizes("BNLSTM", input_size=input_size, hidden_size=hidden_size, max_length=max_length)
        checks.eps(eps, "BNLSTM: eps")
        if momentum is not None:
            checks.momentum(momentum, "BNLSTM: momentum")
        checks.number(gamma_init, "BNLSTM: gamma_init")
        checks.number(forget_bias, "BNLSTM: forget_bias")
        self.input_size, self.hidden_size, self.max_length = input_size, hidden_size, max_length
        self.batch_first, self.eps, self.momentum = batch_first, eps, momentum
        self.gamma_init, self.forget_bias = gamma_init, forget_bias
        self.dtype = np.dtype(dtype)
        g = 4 * hidden_size
        self._gate_parameters(dtype)
        self.bn_ih_weight = Parameter(np.empty(g, dtype=dtype))
        self.bn_hh_weight = Parameter(np.empty(g, dtype=dtype))
        self.bn_c_weight = Parameter(np.empty(hidden_size, dtype=dtype))
        self.bn_c_bias = Parameter(np.empty(hidden_size, dtype=dtype))
        for name, c in (("ih", g), ("hh", g), ("c", hidden_size)):
            self.register_buffer(f"bn_{name}_running_mean", Tensor(np.zeros((max_length, c), dtype=dtype)))
            self.register_buffer(f"bn_{name}_running_var", Tensor(np.ones((max_length, c), dtype=dtype)))
        self.register_buffer("num_batches_tracked", Tensor(np.zeros((), dtype=np.int64)))
        self.reset_parameters()

    def reset_parameters(self):
        self._reset_gate_parameters()
        for p in (self.bn_ih_weight, self.bn_hh_weight, self.bn_c_weight):
            init.constant_(p, self.gamma_init)
        init.zeros_(self.bn_c_bias)
        self.reset_running_stats()

    def reset_running_stats(self):
        for name in ("ih", "hh", "c"):
            getattr(self, f"bn_{name}_running_mean").data[...] = 0
            getattr(self, f"bn_{name}_running_var").data[...] = 1
        self.num_batches_tracked.data[...] = 0

    def running_stats(self):
        """The six per-step buffers' arrays, in ``bn_lstm_layer``'s order."""
        return tuple(getattr(self, f"bn_{n}_running_{s}").data
                     for n in ("ih", "hh", "c") for s in ("mean", "var"))

    def _check_batch(self, n):
        if self.training and n < 2:
            raise ValueError(f"BNLSTM: training needs a batch of more than 1 sequence for its "
                             f"batch statistics, got batch size {n}")

    def _layer(self, input, h0, c0):
        momentum = self.momentum
        if self.training:
            self.num_batches_tracked.data[...] += 1
            if momentum is None:
                momentum = 1.0 / int(self.num_batches_tracked.data)
        args = (input, h0, c0, self.weight_ih, self.weight_hh, self.bias, self.bn_ih_weight,
                self.bn_hh_weight, self.bn_c_weight, self.bn_c_bias, self.running_stats(),
                self.training, momentum, self.eps)
        return _layer_outputs(bn_lstm_sequence(*args), lambda: bn_lstm_tape(*args))

    def _repr_size(self):
        return f", max_length={self.max_length}"

    def _repr_rest(self):
        return f", momentum={self.momentum}, gamma_init={self.gamma_init}"


class LNLSTM(_NormLSTM):
    """One-layer LSTM with layer normalization (Ba, Kiros & Hinton 2016).

    Parameters: ``weight_ih`` (4H, in), ``weight_hh`` (4H, H), ``bias`` (4H,);
    ``ln_ih_weight``/``ln_ih_bias`` and ``ln_hh_weight``/``ln_hh_bias`` (4H,) =
    alpha/beta of the two gate LNs, ``ln_c_weight``/``ln_c_bias`` (H,) of the
    cell's LN. Alphas start at 1 and betas at 0. The cell is :func:`ln_lstm_layer`;
    weights and forward's arguments are ``_NormLSTM``'s (``forget_bias`` 1).
    No buffers: LN uses each sample's own statistics, so any sequence length
    and any batch size (1 included) work in training and in eval alike.
    """

    _name = "LNLSTM"

    def __init__(self, input_size, hidden_size, batch_first=False, eps=1e-5, forget_bias=1.0,
                 dtype=np.float32):
        dtype = dtypes.parameter(dtype, "LNLSTM")
        super().__init__()
        _check_sizes("LNLSTM", input_size=input_size, hidden_size=hidden_size)
        checks.eps(eps, "LNLSTM: eps")
        checks.number(forget_bias, "LNLSTM: forget_bias")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.batch_first, self.eps, self.forget_bias = batch_first, eps, forget_bias
        self.dtype = np.dtype(dtype)
        g = 4 * hidden_size
        self._gate_parameters(dtype)
        for name, c in (("ih", g), ("hh", g), ("c", hidden_size)):
            setattr(self, f"ln_{name}_weight", Parameter(np.empty(c, dtype=dtype)))
            setattr(self, f"ln_{name}_bias", Parameter(np.empty(c, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self):
        self._reset_gate_parameters()
        for name in ("ih", "hh", "c"):
            init.constant_(getattr(self, f"ln_{name}_weight"), 1.0)
            init.zeros_(getattr(self, f"ln_{name}_bias"))

    def _layer(self, input, h0, c0):
        return _layer_outputs(None, lambda: ln_lstm_tape(
            input, h0, c0, self.weight_ih, self.weight_hh, self.bias, self.ln_ih_weight,
            self.ln_ih_bias, self.ln_hh_weight, self.ln_hh_bias, self.ln_c_weight, self.ln_c_bias,
            self.eps))
