"""Legal PyTorch calls (from its OpInfo samples) that tinynorm takes as PyTorch does: loop oracles,
finite-difference gradients on hypothesis shapes, and torch itself when installed."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinynorm as tn
import tinynorm.functional as F
from tinynorm.testing import gradcheck

FAST = settings(max_examples=6, deadline=None)


def rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def loop_windows(h, k, s, p, out):
    """(start, stop) of each pooling window along one axis, clipped to the input."""
    return [(max(i * s - p, 0), min(i * s - p + k, h)) for i in range(out)]


def loop_avg_pool(x, k, s, p, divisor):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    y = np.zeros((n, c, oh, ow))
    for a in range(n):
        for b in range(c):
            for i, (h0, h1) in enumerate(loop_windows(h, k, s, p, oh)):
                for j, (w0, w1) in enumerate(loop_windows(w, k, s, p, ow)):
                    y[a, b, i, j] = sum(x[a, b, u, v] for u in range(h0, h1) for v in range(w0, w1)) / divisor
    return y


def loop_max_pool_indices(x, k, s):
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    idx = np.zeros((n, c, oh, ow), np.int64)
    for a in range(n):
        for b in range(c):
            for i in range(oh):
                for j in range(ow):
                    best = max(((x[a, b, u, v], -(u * w + v)) for u in range(i * s, i * s + k)
                                for v in range(j * s, j * s + k)))
                    idx[a, b, i, j] = -best[1]
    return idx


def loop_cross_entropy(logits, target, weight, smoothing, probabilities):
    """Mean cross-entropy of (N, C, *d) logits; PyTorch's mean divides by sum of w[t] (indices) or by N*prod(d)."""
    c = logits.shape[1]
    w = np.ones(c) if weight is None else weight
    moved = np.moveaxis(logits, 1, -1).reshape(-1, c)
    total = denom = 0.0
    for r, row in enumerate(moved):
        m = max(row)
        logp = [v - m - math.log(sum(math.exp(u - m) for u in row)) for v in row]
        if probabilities:
            q = np.moveaxis(target, 1, -1).reshape(-1, c)[r] * (1 - smoothing) + smoothing / c
            total -= sum(w[j] * q[j] * logp[j] for j in range(c))
            denom += 1
        else:
            t = target.reshape(-1)[r]
            total -= (1 - smoothing) * w[t] * logp[t] + smoothing / c * sum(w[j] * logp[j] for j in range(c))
            denom += w[t]
    return total / denom


@FAST
@given(st.integers(1, 3), st.integers(5, 8), st.sampled_from([(2, 1, 0), (3, 2, 1), (2, 2, 1)]),
       st.integers(1, 9), st.integers(0, 99))
def test_avg_pool2d_divisor_override(c, size, geometry, divisor, seed):
    k, s, p = geometry
    x = rand((2, c, size, size + 1), seed)
    got = F.avg_pool2d(tn.tensor(x), k, s, p, divisor_override=divisor).data
    np.testing.assert_allclose(got, loop_avg_pool(x, k, s, p, divisor), rtol=1e-12, atol=1e-12)
    gradcheck(lambda t: F.avg_pool2d(t, k, s, p, divisor_override=divisor), [x])


@FAST
@given(st.integers(4, 7), st.sampled_from([(2, 2), (3, 1), (3, 2)]), st.integers(0, 99))
def test_max_pool2d_return_indices(size, geometry, seed):
    k, s = geometry
    x = rand((2, 3, size, size), seed)
    y, idx = F.max_pool2d(tn.tensor(x), k, s, return_indices=True)
    np.testing.assert_array_equal(idx.data, loop_max_pool_indices(x, k, s))
    np.testing.assert_array_equal(y.data, np.take_along_axis(x.reshape(2, 3, -1),
                                                             idx.data.reshape(2, 3, -1), 2).reshape(y.shape))
    gradcheck(lambda t: F.max_pool2d(t, k, s, return_indices=True)[0], [x])


@pytest.mark.parametrize("op", [
    lambda t: F.conv2d(t, tn.tensor(rand((4, 2, 3, 3), 1)), padding=(1,)),
    lambda t: F.max_pool2d(t, 2, padding=(1,)),
    lambda t: F.avg_pool2d(t, (3,), stride=(2,), padding=1),
    lambda t: F.adaptive_avg_pool2d(t, (None, 2)),
])
def test_unbatched_input_and_one_element_tuples_equal_a_batch_of_one(op):
    x = rand((2, 5, 6), 0)
    single = op(tn.tensor(x)).data
    batched = op(tn.tensor(x[None])).data
    np.testing.assert_array_equal(single, batched[0])
    gradcheck(op, [x])


def test_adaptive_avg_pool2d_none_keeps_the_input_size():
    x = rand((2, 3, 5, 7), 0)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(tn.tensor(x), (None, 1)).data,
                               x.mean(axis=3, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(tn.tensor(x), None).data, x, rtol=1e-12)


def test_log_softmax_of_an_empty_input_and_with_dtype():
    assert F.log_softmax(tn.zeros(5, 0, 0), 1).shape == (5, 0, 0)
    x = rand((3, 4), 0).astype(np.float32)
    t = tn.tensor(x, requires_grad=True)
    y = F.log_softmax(t, 1, dtype=np.float64)
    assert y.dtype == np.float64
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(y.data, x64 - np.log(np.exp(x64).sum(1, keepdims=True)), rtol=1e-12)
    y.sum().backward()
    assert t.grad.dtype == np.float32
    gradcheck(lambda a: F.log_softmax(a, 0), [rand((4, 3), 1)])


@FAST
@given(st.sampled_from([(4, 3), (3, 4, 2), (2, 3, 2, 2)]), st.booleans(), st.booleans(),
       st.sampled_from([0.0, 0.2]), st.integers(0, 99))
def test_cross_entropy_nd_probabilities_weight_and_smoothing(shape, probabilities, weighted,
                                                             smoothing, seed):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape)
    c = shape[1]
    if probabilities:
        target = rng.random(shape)
        target /= target.sum(axis=1, keepdims=True)
    else:
        target = rng.integers(0, c, (shape[0],) + shape[2:])
    weight = rng.random(c) + 0.1 if weighted else None
    got = F.cross_entropy(tn.tensor(logits), target, weight=weight, label_smoothing=smoothing)
    want = loop_cross_entropy(logits, target, weight, smoothing, probabilities)
    np.testing.assert_allclose(float(got.data), want, rtol=1e-10)
    gradcheck(lambda t: F.cross_entropy(t, target, weight=weight, label_smoothing=smoothing,
                                        reduction="none"), [logits])


def test_cross_entropy_unbatched_and_reduction_none_shapes():
    logits = rand((3, 4, 5), 0)
    target = np.random.default_rng(1).integers(0, 4, (3, 5))
    assert F.cross_entropy(tn.tensor(logits), target, reduction="none").shape == (3, 5)
    one = F.cross_entropy(tn.tensor(logits[0, :, 0]), np.array(target[0, 0]), reduction="none")
    assert one.shape == ()


def test_new_calls_match_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 2, 5))
    t = rng.integers(0, 4, (3, 2, 5))
    p = rng.random((3, 4, 2, 5))
    w = rng.random(4)
    pairs = [
        (F.cross_entropy(tn.tensor(x), t, weight=w, label_smoothing=0.3),
         tf.cross_entropy(torch.tensor(x), torch.tensor(t), weight=torch.tensor(w), label_smoothing=0.3)),
        (F.cross_entropy(tn.tensor(x), p, reduction="none"),
         tf.cross_entropy(torch.tensor(x), torch.tensor(p), reduction="none")),
        (F.avg_pool2d(tn.tensor(x), 2, 1, 1, ceil_mode=True, divisor_override=3),
         tf.avg_pool2d(torch.tensor(x), 2, 1, 1, ceil_mode=True, divisor_override=3)),
        (F.max_pool2d(tn.tensor(x[0]), 2, 1, return_indices=True)[1],
         tf.max_pool2d(torch.tensor(x[0]), 2, 1, return_indices=True)[1]),
        (F.adaptive_avg_pool2d(tn.tensor(x), (None, 3)), tf.adaptive_avg_pool2d(torch.tensor(x), (None, 3))),
        (F.log_softmax(tn.tensor(x), 1, dtype=np.float32), tf.log_softmax(torch.tensor(x), 1, dtype=torch.float32)),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(np.asarray(ours.data), theirs.numpy(), rtol=1e-6, atol=1e-6)
