"""Naive float64 forward oracles for ``tinynorm gradcheck``: explicit loops from the papers' formulas.

These are the package's own, written apart from the kernels and from the
tests' oracles in ``tests/`` (which stay the tests' own). Each takes float64
arrays and returns the op's output.
"""
import itertools
import math

import numpy as np


def _normalize(values, eps):
    m = sum(values) / len(values)
    v = sum((a - m) ** 2 for a in values) / len(values)
    return [(a - m) / math.sqrt(v + eps) for a in values]


def _groups_apply(x, key, eps):
    """Normalize each group of elements sharing ``key(index)`` by its mean and biased variance."""
    out = np.empty_like(x)
    groups = {}
    for idx in itertools.product(*map(range, x.shape)):
        groups.setdefault(key(idx), []).append(idx)
    for members in groups.values():
        vals = _normalize([float(x[i]) for i in members], eps)
        for i, v in zip(members, vals):
            out[i] = v
    return out


def batch_norm(x, w, b, eps=1e-5):
    """y = w_c (x - mean_c) / sqrt(var_c + eps) + b_c, statistics over every axis but 1."""
    y = _groups_apply(x, lambda i: i[1], eps)
    sh = (1, -1) + (1,) * (x.ndim - 2)
    return y * w.reshape(sh) + b.reshape(sh)


def layer_norm(x, w, b, k, eps=1e-5):
    """Statistics per row over the last ``k`` axes; elementwise affine of shape x.shape[-k:]."""
    return _groups_apply(x, lambda i: i[:x.ndim - k], eps) * w + b


def instance_norm(x, w, b, eps=1e-5):
    y = _groups_apply(x, lambda i: i[:2], eps)
    sh = (1, -1) + (1,) * (x.ndim - 2)
    return y * w.reshape(sh) + b.reshape(sh)


def group_norm(x, groups, w, b, eps=1e-5):
    per = x.shape[1] // groups
    y = _groups_apply(x, lambda i: (i[0], i[1] // per), eps)
    sh = (1, -1) + (1,) * (x.ndim - 2)
    return y * w.reshape(sh) + b.reshape(sh)


def rms_norm(x, w, eps=1e-5):
    """y = x / sqrt(mean over the last axis of x^2 + eps) * w."""
    out = np.empty_like(x)
    for idx in itertools.product(*map(range, x.shape[:-1])):
        row = x[idx]
        ms = sum(float(v) * float(v) for v in row) / row.size
        out[idx] = [float(v) / math.sqrt(ms + eps) * float(wj) for v, wj in zip(row, w)]
    return out


def lrn(x, size, alpha, beta, k):
    """b_c = a_c / (k + alpha/n sum_{c' in [c - n//2, c + (n-1)//2]} a_c'^2)^beta."""
    out = np.empty_like(x)
    C = x.shape[1]
    for idx in itertools.product(*map(range, x.shape)):
        c = idx[1]
        total = 0.0
        for cc in range(max(0, c - size // 2), min(C, c + (size - 1) // 2 + 1)):
            total += float(x[(idx[0], cc) + idx[2:]]) ** 2
        out[idx] = x[idx] / (k + alpha / size * total) ** beta
    return out


def frn_tlu(x, w, b, tau, eps=1e-6):
    """z = max(w_c x / sqrt(mean over spatial x^2 + eps) + b_c, tau_c) per (n, c)."""
    out = np.empty_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            plane = x[n, c]
            nu2 = sum(float(v) ** 2 for v in plane.ravel()) / plane.size
            out[n, c] = np.maximum(w[c] * plane / math.sqrt(nu2 + eps) + b[c], tau[c])
    return out


def weight_norm(v, g):
    """w = g_d v / ||v_d|| with the norm over every axis but 0."""
    out = np.empty_like(v)
    for d in range(v.shape[0]):
        norm = math.sqrt(sum(float(a) ** 2 for a in v[d].ravel()))
        out[d] = g[d] * v[d] / norm
    return out


def renormalize(x, w, b, r, d, eps=1e-5):
    """Batch Renorm's training transform with constant r, d: w ((x - mean)/sigma_B * r + d) + b."""
    sh = (1, -1) + (1,) * (x.ndim - 2)
    y = _groups_apply(x, lambda i: i[1], eps)
    return w.reshape(sh) * (y * r.reshape(sh) + d.reshape(sh)) + b.reshape(sh)


def merged_batch_norm(x, w, b, past, eps=1e-5):
    """BN with the statistics of the current batch pooled with past (count, mean, E[x^2]) rows.

    ``past`` is a list of per-channel (count, mean, mean of squares): CmBN weighs
    each by its count; Cross-Iteration BN passes count 1 for current and past alike.
    """
    C = x.shape[1]
    y = np.empty_like(x)
    for c in range(C):
        vals = [float(v) for v in np.moveaxis(x, 1, 0)[c].ravel()]
        n, s1, s2 = float(len(vals)), sum(vals), sum(v * v for v in vals)
        weight_now = n if past and past[0][0] is not None else 1.0
        tot = weight_now
        m1, m2 = s1 / n * weight_now, s2 / n * weight_now
        for cnt, mu, nu in past:
            wgt = 1.0 if cnt is None else float(cnt[c])
            tot += wgt
            m1 += wgt * float(mu[c])
            m2 += wgt * float(nu[c])
        mean, sq = m1 / tot, m2 / tot
        var = max(sq - mean * mean, 0.0)
        np.moveaxis(y, 1, 0)[c] = (np.moveaxis(x, 1, 0)[c] - mean) / math.sqrt(var + eps)
    sh = (1, -1) + (1,) * (x.ndim - 2)
    return y * w.reshape(sh) + b.reshape(sh)


def _sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def bn_lstm(x, h0, c0, w_ih, w_hh, bias, g_ih, g_hh, g_c, b_c, eps=1e-5):
    """BN-LSTM (Cooijmans et al. 2016) with batch statistics at every step; returns stacked h_t."""
    T, N, _ = x.shape
    H = w_hh.shape[1]

    def bn_cols(a, gamma, beta):
        out = np.empty_like(a)
        for j in range(a.shape[1]):
            out[:, j] = np.array(_normalize(list(a[:, j]), eps)) * gamma[j] + beta[j]
        return out

    h, c, hs = h0.copy(), c0.copy(), []
    for t in range(T):
        gx = np.array([[sum(x[t, n, k] * w_ih[j, k] for k in range(x.shape[2])) for j in range(4 * H)]
                       for n in range(N)])
        gh = np.array([[sum(h[n, k] * w_hh[j, k] for k in range(H)) for j in range(4 * H)]
                       for n in range(N)])
        gates = bn_cols(gx, g_ih, np.zeros(4 * H)) + bn_cols(gh, g_hh, np.zeros(4 * H)) + bias
        c_new = np.empty_like(c)
        o = np.empty_like(c)
        for n in range(N):
            for j in range(H):
                i_, f_ = _sigmoid(gates[n, j]), _sigmoid(gates[n, H + j])
                g_, o[n, j] = math.tanh(gates[n, 2 * H + j]), _sigmoid(gates[n, 3 * H + j])
                c_new[n, j] = f_ * c[n, j] + i_ * g_
        c = c_new
        h = o * np.tanh(bn_cols(c, g_c, b_c))
        hs.append(h)
    return np.stack(hs)


def linear(x, w, b):
    out = np.empty(x.shape[:-1] + (w.shape[0],))
    for idx in itertools.product(*map(range, x.shape[:-1])):
        for o in range(w.shape[0]):
            out[idx + (o,)] = sum(float(x[idx + (k,)]) * w[o, k] for k in range(w.shape[1])) + b[o]
    return out


def conv2d(x, w, b, stride, padding):
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    oh = (H + 2 * padding - kh) // stride + 1
    ow = (W + 2 * padding - kw) // stride + 1
    out = np.zeros((N, O, oh, ow))
    for n, o, i, j in itertools.product(range(N), range(O), range(oh), range(ow)):
        s = b[o]
        for c, p, q in itertools.product(range(C), range(kh), range(kw)):
            r, t = i * stride + p - padding, j * stride + q - padding
            if 0 <= r < H and 0 <= t < W:
                s += x[n, c, r, t] * w[o, c, p, q]
        out[n, o, i, j] = s
    return out


def log_softmax(x):
    out = np.empty_like(x)
    for idx in itertools.product(*map(range, x.shape[:-1])):
        row = [float(v) for v in x[idx]]
        m = max(row)
        lse = m + math.log(sum(math.exp(v - m) for v in row))
        out[idx] = [v - lse for v in row]
    return out


def max_pool2d(x, k):
    N, C, H, W = x.shape
    out = np.empty((N, C, H // k, W // k))
    for n, c, i, j in itertools.product(range(N), range(C), range(H // k), range(W // k)):
        out[n, c, i, j] = max(float(x[n, c, i * k + p, j * k + q]) for p in range(k) for q in range(k))
    return out
