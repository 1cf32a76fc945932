"""The LSTM and BN-LSTM layers as one tape node each: the whole sequence, forward and
backward through time, in one Function.

Forward: the input projection of all T steps is one GEMM (T*N, in) @ W_ih^T (for the
BN-LSTM, with its per-step batch normalization of every step at once, since it does not
depend on the recurrence); each step is then one GEMM h_{t-1} @ W_hh^T and one kernel
(:mod:`tinynorm.kernels.cpu.lstm`) for the gates, the cell update and, in the BN-LSTM, the
normalizations of W_hh h_{t-1} and c_t. The gate activations, cells and normalized values
are kept in (T, N, ...) arrays for backward.

Backward (BPTT): one kernel and one GEMM (dW_hh-side, ``dpre_t @ W_hh``) per step, in
reverse; the weight, bias and input gradients are then GEMMs and sums over the whole
sequence. From h0 = 0 (and a finite W_hh) the step-0 products, W_hh h0 and its share of
the W_hh gradient, are zero and skipped. Every product runs through NumPy's BLAS on Numba's
thread count (:func:`tinynorm.blas.threads`). Second order (``create_graph=True``) rebuilds the layer from the tape ops of
:mod:`tinynorm.ops.lstm_tape` with the statistics the forward used and differentiates
that, so the running statistics are not updated a second time.

The layer's output is packed: one (T+1, N, H) array holding h_1 .. h_T and then c_T
(h_T is row T-1). The formulas are in :func:`tinynorm.nn.lstm.lstm_layer` and
:func:`~tinynorm.nn.lstm.bn_lstm_layer`. GPU arrays, and arguments that do not fit (which
the tape path refuses with its own messages), take the tape path.
"""
import functools

import numba
import numpy as np

from .. import blas, buffer_pool, checks
from .. import functional as F
from .. import kernels as _kernels
from ..autograd import Function
from ..kernels import kernels_for
from ..tensor import Tensor, as_tensor
from .lstm_tape import bn_lstm_tape, lstm_tape

__all__ = ["LSTMSequence", "BNLSTMSequence", "lstm_sequence", "bn_lstm_sequence", "unpack"]


def unpack(y):
    """(list of T hidden states, h_T, c_T) of a packed layer output ``y`` (T+1, N, H)."""
    steps = y.shape[0] - 1
    hs = [y[t] for t in range(steps)]
    return hs, hs[-1], y[steps]


def _packed(hs, h, c):
    return F.stack(list(hs) + [c])


def _tape_grads(fn, g, inputs, rebuild):
    """The input gradients of ``fn`` as tape ops: ``rebuild`` (the layer from tape ops) is
    differentiated with ``create_graph`` along the cotangent ``g``."""
    from ..graph import grad
    wrt = [t for t, need in zip(inputs, fn.needs_input_grad) if need]
    got = iter(grad(rebuild(*inputs), wrt, grad_outputs=g, create_graph=True, allow_unused=True))
    return tuple(next(got) if need else None for need in fn.needs_input_grad)


def _blas_threads(method):
    """``method`` run with OpenBLAS on Numba's thread count (:func:`tinynorm.blas.threads`): the
    layer's kernels are serial, so its products may take every thread tinynorm was given
    (``NUMBA_NUM_THREADS``, ``--threads``), and no more."""
    @functools.wraps(method)
    def run(*args, **kwargs):
        with blas.threads(numba.get_num_threads()):
            return method(*args, **kwargs)
    return run


def _matmul(a, b, out=None):
    """``a @ b`` (into ``out``) straight through NumPy's BLAS (a range of the profiler's GEMM
    group when it is on)."""
    if _kernels._profiler is not None:
        return _kernels._profiler.call("kernel:blas.matmul", np.matmul, a, b, out)
    return np.matmul(a, b, out=out)


def _zero_start(h0, w_hh):
    """Whether h0 is all zeros and W_hh finite, so that W_hh h0 is exactly zero and its
    product (and the step-0 share of the W_hh gradient) can be skipped."""
    return not h0.any() and bool(np.isfinite(w_hh).all())


def _recurrent_product(t, zero_start, h_prev, w_hh, scratch, out):
    """``out = h_prev @ W_hh^T`` (N, 4H) of step t, zeros at step 0 from a zero start.
    BLAS runs this shape faster as W_hh h_prev^T into the (4H, N) ``scratch``, transposed
    into ``out`` afterwards."""
    if t == 0 and zero_start:
        out.fill(0)
    else:
        _matmul(w_hh, h_prev.T, scratch)
        np.copyto(out, scratch.T)


def _dw_hh(dhw, hbuf, zero_start):
    """sum_t dhw_t^T h_{t-1}: one product over the steps, step 0 left out from a zero start
    (where its gradient rows are finite, so that its share is exactly zero)."""
    steps, n, gates = dhw.shape
    first = 1 if zero_start and np.isfinite(dhw[0]).all() else 0
    if first == steps:
        return np.zeros((gates, hbuf.shape[2]), dhw.dtype)
    return _matmul(dhw[first:].reshape(-1, gates).T, hbuf[first:steps].reshape(-1, hbuf.shape[2]))


def _big(like):
    """An uninitialized (T, N, 4H) array like ``like``, from the buffer pool."""
    return buffer_pool.empty(np, like.shape, like.dtype)


def _state_buffers(h0, c0, steps):
    hbuf = np.empty((steps + 1,) + h0.shape, h0.dtype)
    cbuf = np.empty_like(hbuf)
    hbuf[0], cbuf[0] = h0, c0
    return hbuf, cbuf


def _pack_output(hbuf, cbuf):
    steps = hbuf.shape[0] - 1
    y = np.empty_like(hbuf)
    y[:steps] = hbuf[1:]
    y[steps] = cbuf[steps]
    return y


class LSTMSequence(Function):
    """One LSTM layer over a (T, N, in) sequence; inputs ``(x, h0, c0, weight_ih, weight_hh,
    bias_ih, bias_hh)`` (biases may be None); output packed (T+1, N, H)."""

    @_blas_threads
    def forward(self, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        kern = kernels_for("lstm", x)
        steps, n, _ = x.shape
        hs = w_hh.shape[1]
        x = np.ascontiguousarray(x)
        xw = _matmul(x.reshape(steps * n, -1), w_ih.T)
        for b in (b_ih, b_hh):
            if b is not None:
                xw += b
        xw = xw.reshape(steps, n, 4 * hs)
        hbuf, cbuf = _state_buffers(h0, c0, steps)
        act = buffer_pool.empty(np, (steps, n, 4 * hs), x.dtype)
        tc = np.empty((steps, n, hs), x.dtype)
        w_hh_c = np.ascontiguousarray(w_hh)
        hw, hw_t = np.empty((n, 4 * hs), x.dtype), np.empty((4 * hs, n), x.dtype)
        self.zero_start = _zero_start(h0, w_hh)
        for t in range(steps):
            _recurrent_product(t, self.zero_start, hbuf[t], w_hh_c, hw_t, hw)
            kern.lstm_step_forward(hw, xw[t], cbuf[t], act[t], cbuf[t + 1], tc[t], hbuf[t + 1])
        self.save_for_backward(x, w_ih, w_hh, hbuf, cbuf, act, tc)
        self.biases = (b_ih is not None, b_hh is not None)
        return _pack_output(hbuf, cbuf)

    @_blas_threads
    def backward(self, g):
        x, w_ih, w_hh, hbuf, cbuf, act, tc = self.saved
        kern = kernels_for("lstm", x)
        steps, n, _ = x.shape
        hs = w_hh.shape[1]
        g = np.ascontiguousarray(g, dtype=x.dtype)
        dc = g[steps].copy()
        dh = np.zeros((n, hs), x.dtype)
        dpre = buffer_pool.empty(np, (steps, n, 4 * hs), x.dtype)
        need = self.needs_input_grad
        for t in range(steps - 1, -1, -1):
            kern.lstm_step_backward(g[t], dh, dc, act[t], cbuf[t], tc[t], dpre[t])
            if t or need[1]:
                _matmul(dpre[t], w_hh, dh)
        d2 = dpre.reshape(steps * n, 4 * hs)
        dx = _matmul(d2, w_ih).reshape(x.shape) if need[0] else None
        dw_ih = _matmul(d2.T, x.reshape(steps * n, -1)) if need[3] else None
        dw_hh = _dw_hh(dpre, hbuf, self.zero_start) if need[4] else None
        db = d2.sum(axis=0) if need[5] or need[6] else None
        return (dx, dh if need[1] else None, dc, dw_ih, dw_hh, db if self.biases[0] else None,
                None if db is None or not self.biases[1] else db.copy())

    def backward_graph(self, g, inputs):
        return _tape_grads(self, g, inputs, lambda *a: _packed(*lstm_tape(*a)))


class BNLSTMSequence(Function):
    """One BN-LSTM layer over a (T, N, in) sequence; inputs ``(x, h0, c0, weight_ih,
    weight_hh, bias, bn_ih_weight, bn_hh_weight, bn_c_weight, bn_c_bias)``; keyword
    ``running_stats`` (six arrays, updated in place in training, or None), ``training``,
    ``momentum``, ``eps``; output packed (T+1, N, H)."""

    @_blas_threads
    def forward(self, x, h0, c0, w_ih, w_hh, bias, g_ih, g_hh, g_c, b_c, *, running_stats,
                training, momentum, eps):
        kern = kernels_for("lstm", x)
        steps, n, _ = x.shape
        hs, dt = w_hh.shape[1], x.dtype
        use_batch = bool(training) or running_stats is None
        x = np.ascontiguousarray(x)
        wx = _matmul(x.reshape(steps * n, -1), w_ih.T).reshape(steps, n, 4 * hs)
        if use_batch:
            stats = [np.empty((steps, c)) for c in (4 * hs, 4 * hs, 4 * hs, 4 * hs, hs, hs)]
        else:
            rows = np.minimum(np.arange(steps), running_stats[0].shape[0] - 1)
            stats = [np.ascontiguousarray(s[rows], dtype=np.float64) for s in running_stats]
        xhat_x, ax = _big(wx), _big(wx)
        inv_x = np.empty((steps, 4 * hs))
        kern.bn_sequence_forward(wx, stats[0], stats[1], use_batch, eps, g_ih, bias, xhat_x, ax,
                                 inv_x)
        hbuf, cbuf = _state_buffers(h0, c0, steps)
        act, xh = _big(wx), _big(wx)
        chat, tn = np.empty((steps, n, hs), dt), np.empty((steps, n, hs), dt)
        inv_h, inv_c = np.empty((steps, 4 * hs)), np.empty((steps, hs))
        w_hh_c = np.ascontiguousarray(w_hh)
        hw, hw_t = np.empty((n, 4 * hs), dt), np.empty((4 * hs, n), dt)
        self.zero_start = _zero_start(h0, w_hh)
        for t in range(steps):
            _recurrent_product(t, self.zero_start, hbuf[t], w_hh_c, hw_t, hw)
            kern.bn_lstm_step_forward(hw, ax[t], g_hh, cbuf[t], g_c, b_c, stats[2][t],
                                      stats[3][t], stats[4][t], stats[5][t], use_batch, eps,
                                      xh[t], inv_h[t], act[t], cbuf[t + 1], chat[t], inv_c[t],
                                      tn[t], hbuf[t + 1])
        if training and running_stats is not None:
            for k in range(3):
                kern.update_running(running_stats[2 * k], running_stats[2 * k + 1], stats[2 * k],
                                    stats[2 * k + 1], n, float(momentum))
        self.use_batch = use_batch
        self.eval_stats = None if use_batch else tuple(s.astype(dt) for s in running_stats)
        self.momentum, self.eps = momentum, eps
        self.save_for_backward(x, w_ih, w_hh, g_ih, g_hh, g_c, hbuf, cbuf, xhat_x, inv_x, act, xh,
                               inv_h, chat, inv_c, tn)
        return _pack_output(hbuf, cbuf)

    @_blas_threads
    def backward(self, g):
        (x, w_ih, w_hh, g_ih, g_hh, g_c, hbuf, cbuf, xhat_x, inv_x, act, xh, inv_h, chat, inv_c,
         tn) = self.saved
        kern = kernels_for("lstm", x)
        steps, n, _ = x.shape
        hs, dt = w_hh.shape[1], x.dtype
        g = np.ascontiguousarray(g, dtype=dt)
        dc = g[steps].copy()
        dh = np.zeros((n, hs), dt)
        dpre, dhw = _big(act), _big(act)
        dz = np.empty((n, hs), dt)
        dg_hh, dg_c, db_c = np.zeros(4 * hs), np.zeros(hs), np.zeros(hs)
        need = self.needs_input_grad
        for t in range(steps - 1, -1, -1):
            kern.bn_lstm_step_backward(g[t], dh, dc, act[t], cbuf[t], xh[t], inv_h[t],
                                       chat[t], inv_c[t], tn[t], g_hh, g_c, self.use_batch,
                                       dpre[t], dhw[t], dg_hh, dg_c, db_c, dz)
            if t or need[1]:
                _matmul(dhw[t], w_hh, dh)
        dwx = _big(dpre)
        dg_ih, db = np.empty(4 * hs), np.empty(4 * hs)
        kern.bn_sequence_backward(dpre, xhat_x, inv_x, g_ih, self.use_batch, dwx, dg_ih, db)
        d2 = dwx.reshape(steps * n, 4 * hs)
        dx = _matmul(d2, w_ih).reshape(x.shape) if need[0] else None
        dw_ih = _matmul(d2.T, x.reshape(steps * n, -1)) if need[3] else None
        dw_hh = _dw_hh(dhw, hbuf, self.zero_start) if need[4] else None
        return (dx, dh if need[1] else None, dc, dw_ih, dw_hh, db.astype(dt), dg_ih.astype(dt),
                dg_hh.astype(dt),
                dg_c.astype(dt), db_c.astype(dt))

    def backward_graph(self, g, inputs):
        def rebuild(*a):
            return _packed(*bn_lstm_tape(*a, running_stats=self.eval_stats,
                                         training=self.use_batch, momentum=self.momentum,
                                         eps=self.eps))
        return _tape_grads(self, g, inputs, rebuild)


def _as_sequence(input):
    """A (T, N, in) Tensor from a Tensor or a list of T (N, in) Tensors."""
    if isinstance(input, (list, tuple)):
        return F.stack(input) if input else None
    return input if isinstance(input, Tensor) else as_tensor(input)


def _fits(x, h0, c0, w_ih, w_hh, vectors, running_stats=None):
    """Whether the fused path takes these arguments: host arrays of one float dtype and the
    layer's shapes (the tape path gives everything else its own error or result)."""
    if x is None or x.ndim != 3 or x.shape[0] < 1:
        return False
    tensors = (x, h0, c0, w_ih, w_hh) + tuple(v for v in vectors if v is not None)
    if not all(isinstance(t, Tensor) for t in tensors):
        return False
    dt = x.dtype
    if dt not in (np.float32, np.float64) or any(type(t.data) is not np.ndarray or t.dtype != dt
                                                 for t in tensors):
        return False
    steps, n, size = x.shape
    hs = w_hh.shape[-1]
    if (w_ih.shape != (4 * hs, size) or w_hh.shape != (4 * hs, hs) or h0.shape != (n, hs)
            or c0.shape != (n, hs)):
        return False
    if any(v is not None and v.shape != (4 * hs,) for v in vectors[:3]):
        return False
    if any(v is not None and v.shape != (hs,) for v in vectors[3:]):
        return False
    if running_stats is not None:
        if len(running_stats) != 6 or not all(
                type(s) is np.ndarray and s.dtype == dt and s.ndim == 2 and s.shape[0] >= 1
                and s.shape[1] == c for s, c in zip(running_stats, (4 * hs,) * 4 + (hs,) * 2)):
            return False
    return True


def lstm_sequence(input, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """The packed output Tensor (T+1, N, H) of :class:`LSTMSequence`, or None where the tape
    path must run (GPU arrays, arguments it refuses)."""
    x = _as_sequence(input)
    if not _fits(x, h0, c0, weight_ih, weight_hh, (bias_ih, bias_hh, None)):
        return None
    return LSTMSequence.apply(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh)


def bn_lstm_sequence(input, h0, c0, weight_ih, weight_hh, bias, bn_ih_weight, bn_hh_weight,
                     bn_c_weight, bn_c_bias, running_stats=None, training=True, momentum=0.1,
                     eps=1e-5):
    """The packed output Tensor (T+1, N, H) of :class:`BNLSTMSequence`, or None where the tape
    path must run (GPU arrays, a batch of one with batch statistics, arguments it refuses)."""
    x = _as_sequence(input)
    if not _fits(x, h0, c0, weight_ih, weight_hh,
                 (bias, bn_ih_weight, bn_hh_weight, bn_c_weight, bn_c_bias), running_stats):
        return None
    if bias is None or any(v is None for v in (bn_ih_weight, bn_hh_weight, bn_c_weight, bn_c_bias)):
        return None
    if (training or running_stats is None) and x.shape[1] < 2:
        return None
    eps = float(checks.eps(eps, "batch_norm: eps"))
    if training and running_stats is not None:
        momentum = float(checks.momentum(momentum, "batch_norm: momentum"))
    return BNLSTMSequence.apply(x, h0, c0, weight_ih, weight_hh, bias, bn_ih_weight, bn_hh_weight,
                                bn_c_weight, bn_c_bias, running_stats=running_stats,
                                training=bool(training), momentum=momentum, eps=eps)
