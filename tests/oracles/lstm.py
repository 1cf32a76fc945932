"""The LSTM cell in float64 loops, shared by the LSTM, BN-LSTM and LN-LSTM oracles
(docs/norms.md#bn-lstm, docs/norms.md#ln-lstm); the LSTM and BN-LSTM oracles, the LSTM's
backward through time written out; and helpers of their tests."""
import numpy as np
import pytest

import tinynorm as tn
import tinynorm.functional as F


def sig(v):
    with np.errstate(over="ignore"):    # exp(-v) = inf for very negative v gives the exact 0
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


# ---- the oracle: explicit loops over steps, gates and channels ----------------

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



# ---- the oracle: BN over the batch axis of each step, with per-step statistics --------

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


def oracle_lstm_backward(x, h0, c0, w_ih, w_hh, b, gy, gc):
    """One LSTM layer's backward through time, written out in float64: ``gy`` (T, N, H) is the
    gradient on h_1 .. h_T and ``gc`` (N, H) that on c_T; ``b`` (4H,) is the summed bias or None.
    Returns the gradients of x, h0, c0, w_ih, w_hh and b."""
    x, h0, c0, w_ih, w_hh = (np.asarray(a, np.float64) for a in (x, h0, c0, w_ih, w_hh))
    hsz = w_hh.shape[1]
    bias = np.zeros(4 * hsz) if b is None else np.asarray(b, np.float64)
    h, c, saved = h0, c0, []
    for t in range(x.shape[0]):
        pre = x[t] @ w_ih.T + h @ w_hh.T + bias
        i, f = sig(pre[:, :hsz]), sig(pre[:, hsz:2 * hsz])
        g, o = np.tanh(pre[:, 2 * hsz:3 * hsz]), sig(pre[:, 3 * hsz:])
        c_new = f * c + i * g
        saved.append((h, c, i, f, g, o, np.tanh(c_new)))
        h, c = o * np.tanh(c_new), c_new
    dx, dw_ih, dw_hh = np.zeros_like(x), np.zeros_like(w_ih), np.zeros_like(w_hh)
    db = np.zeros(4 * hsz)
    dh_next, dc = np.zeros_like(h0), np.asarray(gc, np.float64).copy()
    for t in range(x.shape[0] - 1, -1, -1):
        h_prev, c_prev, i, f, g, o, tc = saved[t]
        dh = gy[t] + dh_next
        dct = dc + dh * o * (1 - tc ** 2)
        dpre = np.concatenate([dct * g * i * (1 - i), dct * c_prev * f * (1 - f),
                               dct * i * (1 - g ** 2), dh * tc * o * (1 - o)], axis=1)
        dc = dct * f
        dh_next = dpre @ w_hh
        dx[t] = dpre @ w_ih
        dw_ih += dpre.T @ x[t]
        dw_hh += dpre.T @ h_prev
        db += dpre.sum(axis=0)
    return dx, dh_next, dc, dw_ih, dw_hh, db


def randomize(m, rng, scale=0.5):
    for p in m.parameters():
        p.data[...] = rng.normal(0, scale, p.shape)


def flat(*tensors):
    return F.cat([t.reshape(-1) for t in tensors])


def assert_inputs_refused(m, cases):
    """``m`` on zeros of each ``(shape, dtype, phrase)`` raises a ValueError matching ``phrase``."""
    for shape, dtype, phrase in cases:
        with pytest.raises(ValueError, match=phrase):
            m(tn.tensor(np.zeros(shape, dtype)))
