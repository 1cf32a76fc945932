"""LSTM and BN-LSTM cell kernels for the CPU (Numba); the math is in :mod:`tinynorm.ops.lstm`.

One call is one time step of a batch, on (N, 4H) gate rows in the order i, f, g, o and
(N, H) cell rows; the GEMMs around them (W_ih x for the whole sequence, W_hh h per step,
the weight gradients over the whole sequence) stay with NumPy's BLAS.

    lstm_step_forward       act, c, tanh(c), h of one step
    lstm_step_backward      the gate pre-activation gradients of one step, the cell carry
    column_stats            per-column batch mean and biased variance of (N, C)
    bn_sequence_forward     BN(v_t) of every step t of (T, N, C), per-step statistics
    bn_sequence_backward    its backward, with the gamma and bias gradients
    bn_lstm_step_forward    BN(W_hh h), the cell update and BN(c) of one BN-LSTM step
    bn_lstm_step_backward   its backward
    update_running          per-step running statistics, rows min(t, L - 1), in step order

The elementwise passes run in the arrays' dtype (float32 or float64, one per call);
batch statistics and the parameter-gradient sums accumulate in float64, the variance in
two passes (mean first). The steps are short (N * 4H values), so every kernel is serial:
the time goes to the per-step GEMM. No fast-math flag: a NaN reaches the outputs.
"""
import math

import numpy as np

from numba import types
from numba.extending import overload

from .jit import njit


# Eigen's float32 tanh (generic_fast_tanh_float): an odd degree-13 over even degree-6 rational
# function on [-c, c], the input clamped there, within 4e-7 of tanh everywhere. It is plain
# arithmetic, so the step loops vectorize (libm's expf and tanhf do not).
_F32 = np.float32
_CLAMP = _F32(7.90531110763549805)
_A1, _A3, _A5, _A7 = (_F32(4.89352455891786e-03), _F32(6.37261928875436e-04),
                      _F32(1.48572235717979e-05), _F32(5.12229709037114e-08))
_A9, _A11, _A13 = _F32(-8.60467152213735e-11), _F32(2.00018790482477e-13), _F32(-2.76076847742355e-16)
_B0, _B2, _B4, _B6 = (_F32(4.89352518554385e-03), _F32(2.26843463243900e-03),
                      _F32(1.18534705686654e-04), _F32(1.19825839466702e-06))
_HALF = _F32(0.5)


def _tanh(v):
    """tanh of a float32 (the rational function above) or a float64 (through exp, exact to an
    ulp of 1 in absolute terms); +-inf give +-1 and NaN stays NaN."""
    return math.tanh(v)


def _sigmoid(v):
    """1 / (1 + exp(-v)); for a float32, 0.5 + 0.5 tanh(v / 2) with the rational tanh."""
    return 1.0 / (1.0 + math.exp(-v))


@overload(_tanh, jit_options={"error_model": "numpy"})
def _tanh_impl(v):
    if v == types.float32:
        def tanh32(v):
            x = _CLAMP if v > _CLAMP else v
            x = -_CLAMP if x < -_CLAMP else x
            x2 = x * x
            p = (((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1
            q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
            return x * p / q
        return tanh32

    def tanh64(v):
        return 1.0 - 2.0 / (math.exp(v + v) + 1.0)
    return tanh64


@overload(_sigmoid, jit_options={"error_model": "numpy"})
def _sigmoid_impl(v):
    if v == types.float32:
        def sigmoid32(v):
            return _HALF + _HALF * _tanh(_HALF * v)
        return sigmoid32

    def sigmoid64(v):
        return 1.0 / (1.0 + math.exp(-v))
    return sigmoid64


@njit
def lstm_step_forward(hw, xw, c_prev, act, c, tc, h):
    """Gates from pre-activations hw + xw (N, 4H); act (N, 4H) gets sigmoid(i), sigmoid(f),
    tanh(g), sigmoid(o); c, tc = tanh(c) and h (N, H)."""
    n, hs = c.shape
    for r in range(n):
        hwr, xwr, ar = hw[r], xw[r], act[r]
        for k in range(2 * hs):
            ar[k] = _sigmoid(hwr[k] + xwr[k])
        for k in range(2 * hs, 3 * hs):
            ar[k] = _tanh(hwr[k] + xwr[k])
        for k in range(3 * hs, 4 * hs):
            ar[k] = _sigmoid(hwr[k] + xwr[k])
        _cell(ar, c_prev[r], c[r], tc[r], h[r])


@njit
def _cell(ar, c_prev, c, tc, h):
    """c = f c_prev + i g, tc = tanh(c), h = o tc on one row (separate loops vectorize, one
    loop over every array of the step does not)."""
    hs = c.shape[0]
    for j in range(hs):
        cc = ar[hs + j] * c_prev[j] + ar[j] * ar[2 * hs + j]
        t = _tanh(cc)
        c[j], tc[j], h[j] = cc, t, ar[3 * hs + j] * t


@njit
def lstm_step_backward(dy, dh_next, dc, act, c_prev, tc, dpre):
    """dh = dy + dh_next reaches h = o tanh(c); ``dc`` (N, H) holds the gradient of c_t on entry
    and that of c_{t-1} on exit; dpre (N, 4H) gets the gate pre-activation gradients."""
    n, hs = dc.shape
    for r in range(n):
        for j in range(hs):
            i, f = act[r, j], act[r, hs + j]
            g, o = act[r, 2 * hs + j], act[r, 3 * hs + j]
            dh = dy[r, j] + dh_next[r, j]
            t = tc[r, j]
            dct = dc[r, j] + dh * o * (1 - t * t)
            dpre[r, j] = dct * g * i * (1 - i)
            dpre[r, hs + j] = dct * c_prev[r, j] * f * (1 - f)
            dpre[r, 2 * hs + j] = dct * i * (1 - g * g)
            dpre[r, 3 * hs + j] = dh * t * o * (1 - o)
            dc[r, j] = dct * f


@njit
def column_stats(v, mean, var):
    """mean, var (C,) float64: the batch mean and biased variance of each column of v (N, C)."""
    n, ch = v.shape
    mean[:] = 0.0
    var[:] = 0.0
    for r in range(n):
        vr = v[r]
        for k in range(ch):
            mean[k] += vr[k]
    for k in range(ch):
        mean[k] /= n
    for r in range(n):
        vr = v[r]
        for k in range(ch):
            d = vr[k] - mean[k]
            var[k] += d * d
    for k in range(ch):
        var[k] /= n


@njit
def _bn_backward_rows(g, xhat, inv, gamma, use_batch, dv, s1, s2):
    """dv (N, C), the gradient of v where out = gamma xhat and xhat = (v - mean) inv, from
    g = d out; through the batch statistics when ``use_batch``. s1, s2 (C,) float64 get
    sum g and sum g xhat over the rows. dv may be g itself."""
    n, ch = g.shape
    s1[:] = 0.0
    s2[:] = 0.0
    for r in range(n):
        gr, xr = g[r], xhat[r]
        for k in range(ch):
            s1[k] += gr[k]
            s2[k] += gr[k] * xr[k]
    scale, shift, tilt = np.empty(ch), np.zeros(ch), np.zeros(ch)
    for k in range(ch):
        scale[k] = gamma[k] * inv[k]
        if use_batch:
            shift[k] = scale[k] * s1[k] / n
            tilt[k] = scale[k] * s2[k] / n
    for r in range(n):
        gr, xr, dr = g[r], xhat[r], dv[r]
        for k in range(ch):
            dr[k] = gr[k] * scale[k] - shift[k] - xr[k] * tilt[k]


@njit
def bn_sequence_forward(v, mean, var, use_batch, eps, gamma, bias, xhat, out, inv):
    """Per step t of v (T, N, C): xhat = (v - mean_t) inv_t, out = gamma xhat + bias, with
    inv_t = 1 / sqrt(var_t + eps); mean, var (T, C) are computed (use_batch) or given."""
    steps, n, ch = v.shape
    for t in range(steps):
        if use_batch:
            column_stats(v[t], mean[t], var[t])
        mt, it = mean[t], inv[t]
        for k in range(ch):
            it[k] = 1.0 / math.sqrt(var[t, k] + eps)
        for r in range(n):
            vr, xr, outr = v[t, r], xhat[t, r], out[t, r]
            for k in range(ch):
                xr[k] = (vr[k] - mt[k]) * it[k]
            for k in range(ch):
                outr[k] = gamma[k] * xr[k] + bias[k]


@njit
def bn_sequence_backward(gout, xhat, inv, gamma, use_batch, dv, dgamma, dbias):
    """The backward of :func:`bn_sequence_forward` from gout (T, N, C): dv, and dgamma, dbias
    (C,) float64 summed over every step (overwritten)."""
    ch = gout.shape[2]
    dgamma[:] = 0.0
    dbias[:] = 0.0
    s1, s2 = np.empty(ch), np.empty(ch)
    for t in range(gout.shape[0]):
        _bn_backward_rows(gout[t], xhat[t], inv[t], gamma, use_batch, dv[t], s1, s2)
        for k in range(ch):
            dbias[k] += s1[k]
            dgamma[k] += s2[k]


@njit
def bn_lstm_step_forward(hw, ax, gamma_h, c_prev, gamma_c, beta_c, mean_h, var_h, mean_c, var_c,
                         use_batch, eps, xh, inv_h, act, c, chat, inv_c, tn, h):
    """One BN-LSTM step: pre = ax + gamma_h BN(hw) (ax = gamma_x BN(W_ih x_t) + b), the cell
    update, then h = sigmoid(o) tanh(gamma_c BN(c) + beta_c). Saves xh = BN(hw) without gamma,
    chat, tn = tanh(gamma_c chat + beta_c) and the inverse deviations inv_h (4H,), inv_c (H,);
    the statistics (float64) are computed when ``use_batch`` and read otherwise."""
    n, hs = c.shape
    if use_batch:
        column_stats(hw, mean_h, var_h)
    for k in range(4 * hs):
        inv_h[k] = 1.0 / math.sqrt(var_h[k] + eps)
    for r in range(n):
        hwr, axr, xhr, ar = hw[r], ax[r], xh[r], act[r]
        for k in range(4 * hs):
            xhr[k] = (hwr[k] - mean_h[k]) * inv_h[k]
        for k in range(2 * hs):
            ar[k] = _sigmoid(axr[k] + gamma_h[k] * xhr[k])
        for k in range(2 * hs, 3 * hs):
            ar[k] = _tanh(axr[k] + gamma_h[k] * xhr[k])
        for k in range(3 * hs, 4 * hs):
            ar[k] = _sigmoid(axr[k] + gamma_h[k] * xhr[k])
        cr, cpr = c[r], c_prev[r]
        for j in range(hs):
            cr[j] = ar[hs + j] * cpr[j] + ar[j] * ar[2 * hs + j]
    if use_batch:
        column_stats(c, mean_c, var_c)
    for j in range(hs):
        inv_c[j] = 1.0 / math.sqrt(var_c[j] + eps)
    for r in range(n):
        for j in range(hs):
            chat[r, j] = (c[r, j] - mean_c[j]) * inv_c[j]
            t = _tanh(gamma_c[j] * chat[r, j] + beta_c[j])
            tn[r, j] = t
            h[r, j] = act[r, 3 * hs + j] * t


@njit
def bn_lstm_step_backward(dy, dh_next, dc, act, c_prev, xh, inv_h, chat, inv_c, tn, gamma_h,
                          gamma_c, use_batch, dpre, dhw, dgamma_h, dgamma_c, dbeta_c, dz):
    """The backward of :func:`bn_lstm_step_forward`: ``dc`` (N, H) carries the gradient of c_t in
    and that of c_{t-1} out; dpre (N, 4H) gets the gate pre-activation gradients (those of ax),
    dhw (N, 4H) those of hw; dgamma_h, dgamma_c, dbeta_c (float64) accumulate; dz (N, H) is
    scratch."""
    n, hs = dc.shape
    for r in range(n):
        dyr, dnr, tnr, ar, dzr, dpr = dy[r], dh_next[r], tn[r], act[r], dz[r], dpre[r]
        for j in range(hs):
            o, t = ar[3 * hs + j], tnr[j]
            dh = dyr[j] + dnr[j]
            dzr[j] = dh * o * (1 - t * t)
            dpr[3 * hs + j] = dh * t * o * (1 - o)
    s1, s2 = np.empty(hs), np.empty(hs)
    _bn_backward_rows(dz, chat, inv_c, gamma_c, use_batch, dz, s1, s2)
    for j in range(hs):
        dbeta_c[j] += s1[j]
        dgamma_c[j] += s2[j]
    for r in range(n):
        dzr, dcr, cpr, ar, dpr = dz[r], dc[r], c_prev[r], act[r], dpre[r]
        for j in range(hs):
            i, f, g = ar[j], ar[hs + j], ar[2 * hs + j]
            dct = dcr[j] + dzr[j]
            dpr[j] = dct * g * i * (1 - i)
            dpr[hs + j] = dct * cpr[j] * f * (1 - f)
            dpr[2 * hs + j] = dct * i * (1 - g * g)
            dcr[j] = dct * f
    s1, s2 = np.empty(4 * hs), np.empty(4 * hs)
    _bn_backward_rows(dpre, xh, inv_h, gamma_h, use_batch, dhw, s1, s2)
    for k in range(4 * hs):
        dgamma_h[k] += s2[k]


@njit
def update_running(running_mean, running_var, mean, var, n, momentum):
    """running = (1 - momentum) running + momentum batch, step t on row min(t, L - 1) in step
    order; the batch variance var (T, C) is biased and enters unbiased (times n / (n - 1))."""
    rows = running_mean.shape[0]
    for t in range(mean.shape[0]):
        row = min(t, rows - 1)
        for k in range(mean.shape[1]):
            running_mean[row, k] = (1 - momentum) * running_mean[row, k] + momentum * mean[t, k]
            running_var[row, k] = ((1 - momentum) * running_var[row, k]
                                   + momentum * var[t, k] * n / (n - 1))
