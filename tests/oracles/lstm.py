"""The LSTM cell in float64 loops, shared by the LSTM, BN-LSTM and LN-LSTM oracles
(docs/norms.md#bn-lstm, docs/norms.md#ln-lstm), and helpers of their tests."""
import numpy as np
import pytest

import tinynorm as tn
import tinynorm.functional as F


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
