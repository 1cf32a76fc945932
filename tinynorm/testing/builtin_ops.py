"""The built-in ops as ``check_op`` cases: op, float64 oracle (:mod:`.oracles`) and input strategy.

``BUILTIN_OPS`` maps a name to a :class:`BuiltinOp`; ``tinynorm gradcheck``
runs :func:`tinynorm.testing.check_op` on each. Normalizing ops draw their
main input from :func:`~tinynorm.testing.hard_arrays` (constant slices along
the op's reduction axes, large offsets, tiny and huge scales, and planted
NaN/Inf, which must propagate as the oracle's do); parameters are normal
arrays, gammas kept away from 0.
"""
from collections import deque

import numpy as np

from .. import functional as F
from ..ops import cross_batch_norm as _xbn
from ..ops.batch_renorm import renormalize
from ..ops.frn import filter_response_norm
from ..ops.lrn import local_response_norm
from ..ops.rms_norm import rms_norm
from ..ops.weight_norm import _weight_norm
from ..nn.lstm import bn_lstm_layer
from . import oracles as O
from .sync_threads import sync_batch_norm
from .strategies import hard_arrays, normal_arrays


class BuiltinOp:
    """One entry of ``tinynorm gradcheck``: ``fn`` and ``oracle`` take the drawn tuple."""

    def __init__(self, name, about, fn, oracle, inputs, wrt=None):
        self.name, self.about, self.fn, self.oracle, self.inputs = name, about, fn, oracle, inputs
        self.wrt = wrt


def _st():
    from hypothesis import strategies as st
    return st


def _gamma(n):
    """Scales with |gamma| >= 0.5."""
    return normal_arrays((n,)).map(lambda a: np.sign(a) * (0.5 + np.abs(a)) + (a == 0))


def _nchw(min_n=1, max_dims=4):
    """(N, C, *spatial) shapes with at most 48 elements."""
    st = _st()
    return st.tuples(st.integers(min_n, 3), st.integers(1, 3),
                     st.lists(st.integers(1, 4), min_size=0, max_size=max_dims - 2)).map(
        lambda t: (t[0], t[1]) + tuple(t[2]))


OFFSETS = (1e2, 1e3)
BATCH_OFFSETS = (1e2,)


def _hard(shape, axes, offsets=OFFSETS):
    """Offsets stop at 1e3 * std: float32 kernels subtract a float32-rounded mean, whose
    rounding (eps32 |mean| / 2) is 1e-4 of std there and 1e-3 at 1e4 (PyTorch's CPU BN folds
    the mean into a float32 shift and loses as much). Batch statistics of two values can have a
    std far below the drawn one (and Batch Renorm's r up to e scales the error), so the BN
    family's cases stop at 1e2."""
    return hard_arrays(shape, axes, offsets=offsets, nonfinite=True)


CHANNEL_AXES = (0, 2, 3, 4)
SPATIAL_AXES = (2, 3, 4)


def _bn_case(keep=lambda s: int(np.prod(s)) // s[1] >= 2):
    shapes = _nchw().filter(keep)
    return shapes.flatmap(lambda s: _st().tuples(_hard(s, CHANNEL_AXES, BATCH_OFFSETS), _gamma(s[1]),
                                                 normal_arrays((s[1],))))


def _ln_case():
    st = _st()
    shapes = st.tuples(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(1, 2)).filter(
        lambda t: t[1] <= len(t[0]) and int(np.prod(t[0][-t[1]:])) >= 2)
    return shapes.flatmap(lambda t: st.tuples(
        _hard(tuple(t[0]), tuple(range(-t[1], 0))), normal_arrays(tuple(t[0][-t[1]:])).map(
            lambda w: np.sign(w) * (0.5 + np.abs(w))),
        normal_arrays(tuple(t[0][-t[1]:])), st.just(t[1])))


def _gn_case():
    st = _st()
    shapes = st.tuples(st.integers(1, 3), st.sampled_from([(1, 2), (2, 2), (2, 4), (3, 6), (1, 3)]),
                       st.lists(st.integers(1, 3), min_size=0, max_size=2)).filter(
        lambda t: t[1][1] // t[1][0] * int(np.prod(t[2])) >= 2)
    return shapes.flatmap(lambda t: st.tuples(
        _hard((t[0], t[1][1]) + tuple(t[2]), SPATIAL_AXES), st.just(t[1][0]), _gamma(t[1][1]),
        normal_arrays((t[1][1],))))


def _rms_case():
    st = _st()
    shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)
    return shapes.flatmap(lambda s: st.tuples(_hard(s, (-1,)), _gamma(s[-1])))


def _lrn_case():
    st = _st()
    return st.tuples(_nchw().filter(lambda s: len(s) > 2), st.integers(1, 5), st.floats(0.05, 2.0),
                     st.sampled_from([0.75, 0.5, 1.0]), st.floats(0.5, 2.0)).flatmap(
        lambda t: st.tuples(_hard(t[0], None), *(st.just(v) for v in t[1:])))


def _frn_case():
    st = _st()
    shapes = _nchw().filter(lambda s: len(s) > 2)
    return shapes.flatmap(lambda s: st.tuples(
        _hard(s, SPATIAL_AXES), _gamma(s[1]), normal_arrays((s[1],)),
        normal_arrays((s[1],), scale=0.5)))


def _wn_case():
    st = _st()
    shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)
    return shapes.flatmap(lambda s: st.tuples(
        hard_arrays(s, tuple(range(1, len(s))), offsets=(), scales=(1e-3, 1e3)).filter(
            lambda v: bool(np.all(np.abs(v.reshape(v.shape[0], -1)).sum(1) > 0))),
        _gamma(s[0])))


def _brn_case():
    st = _st()
    return _bn_case().flatmap(lambda t: st.tuples(
        *(st.just(v) for v in t),
        normal_arrays((t[0].shape[1],)).map(lambda r: np.exp(np.clip(r, -1, 1))),
        normal_arrays((t[0].shape[1],)).map(lambda d: np.clip(d, -2, 2))))


def _pooled_case(kind):
    """A BN case plus two past per-channel statistics rows (constants)."""
    st = _st()

    def past(t):
        c = t[0].shape[1]
        stats = st.tuples(normal_arrays((2, c)), normal_arrays((2, c)).map(lambda v: 0.5 + v * v),
                          st.integers(2, 6))
        return stats.map(lambda p: t + (p[0], p[0] ** 2 + p[1], float(p[2]) if kind == "cmbn" else 1.0))
    return _bn_case().flatmap(past)


def _cmbn(x, w, b, mus, nus, count):
    state = [(np.full(x.shape[1], count), mus[j], (nus[j] - mus[j] ** 2) * count)
             for j in range(mus.shape[0])]
    return F.batch_norm(x, None, None, w, b, True, combine=_xbn.CrossMiniBatchCombine(state))


def _cbn(x, w, b, mus, nus, _):
    c = x.shape[1]
    history = deque(maxlen=3)
    zero = np.zeros((c, 1))
    for j in range(mus.shape[0]):
        history.append(_xbn.IterationRecord(zero, mus[j], nus[j], zero, zero))
    combine = _xbn.CrossIterationCombine(history, lambda: (zero, zero, zero), True)
    return F.batch_norm(x, None, None, w, b, True, combine=combine)


def _pooled_oracle(kind):
    def oracle(x, w, b, mus, nus, count):
        past = [(np.full(x.shape[1], count) if kind == "cmbn" else None, mus[j], nus[j])
                for j in range(mus.shape[0])]
        return O.merged_batch_norm(x, w, b, past)
    return oracle


def _lstm_case():
    st = _st()
    dims = st.tuples(st.integers(1, 2), st.integers(2, 3), st.integers(1, 2), st.integers(1, 2))

    def arrays(d):
        T, N, I, H = d
        return st.tuples(normal_arrays((T, N, I)), normal_arrays((N, H)), normal_arrays((N, H)),
                         normal_arrays((4 * H, I)), normal_arrays((4 * H, H)),
                         normal_arrays((4 * H,), scale=0.1), _gamma(4 * H), _gamma(4 * H),
                         _gamma(H), normal_arrays((H,), scale=0.1))
    return dims.flatmap(arrays)


def _bn_lstm(*a):
    hs, _, _ = bn_lstm_layer(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9])
    return F.stack(hs)


def _linear_case():
    st = _st()
    return st.tuples(st.lists(st.integers(1, 3), min_size=1, max_size=2), st.integers(1, 4),
                     st.integers(1, 4)).flatmap(lambda t: st.tuples(
                         normal_arrays(tuple(t[0]) + (t[1],)), normal_arrays((t[2], t[1])),
                         normal_arrays((t[2],))))


def _conv_case():
    st = _st()
    return st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 2), st.integers(3, 5),
                     st.integers(1, 3), st.integers(1, 2), st.integers(0, 1)).filter(
        lambda t: t[4] <= t[3] + 2 * t[6]).flatmap(lambda t: st.tuples(
            normal_arrays((t[0], t[1], t[3], t[3])), normal_arrays((t[2], t[1], t[4], t[4])),
            normal_arrays((t[2],)), st.just(t[5]), st.just(t[6])))


def _softmax_case():
    st = _st()
    return st.lists(st.integers(1, 5), min_size=1, max_size=3).flatmap(
        lambda s: st.tuples(hard_arrays(tuple(s), None, offsets=(1e2,), scales=(1e-3, 1e1))))


def _pool_case():
    st = _st()
    return st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 2)).flatmap(
        lambda t: st.tuples(normal_arrays((t[0], t[1], 2 * t[2], 4)), st.just(2)))


def _ops():
    ops = [
        BuiltinOp("batch_norm", "BatchNorm, batch statistics (training)",
                  lambda x, w, b: F.batch_norm(x, None, None, w, b, True), O.batch_norm, _bn_case()),
        BuiltinOp("sync_batch_norm", "SyncBatchNorm, 2 ranks on threads, against BN on the batch",
                  sync_batch_norm, O.batch_norm, _bn_case()),
        BuiltinOp("layer_norm", "LayerNorm over the last 1-2 axes",
                  lambda x, w, b, k: F.layer_norm(x, tuple(x.shape[x.ndim - k:]), w, b),
                  O.layer_norm, _ln_case()),
        BuiltinOp("instance_norm", "InstanceNorm, input statistics",
                  lambda x, w, b: F.instance_norm(x, weight=w, bias=b), O.instance_norm,
                  _bn_case(lambda s: len(s) > 2 and int(np.prod(s[2:])) >= 2)),
        BuiltinOp("group_norm", "GroupNorm", F.group_norm, O.group_norm, _gn_case()),
        BuiltinOp("rms_norm", "RMSNorm over the last axis",
                  lambda x, w: rms_norm(x, (x.shape[-1],), w, 1e-5), O.rms_norm, _rms_case()),
        BuiltinOp("lrn", "local response norm", local_response_norm, O.lrn, _lrn_case()),
        BuiltinOp("frn_tlu", "filter response norm + TLU",
                  lambda x, w, b, t: filter_response_norm(x, w, b, 1e-6, tau=t), O.frn_tlu,
                  _frn_case()),
        BuiltinOp("weight_norm", "weight normalization, dim=0",
                  lambda v, g: _weight_norm(v, g, 0), O.weight_norm, _wn_case()),
        BuiltinOp("batch_renorm", "Batch Renorm's training transform, r and d given",
                  lambda x, w, b, r, d: renormalize(x, r, d, w, b),
                  lambda x, w, b, r, d: O.renormalize(x, w, b, r, d), _brn_case(), wrt=(0, 1, 2)),
        BuiltinOp("cmbn", "cross-mini-batch BN, two earlier mini-batches", _cmbn,
                  _pooled_oracle("cmbn"), _pooled_case("cmbn"), wrt=(0, 1, 2)),
        BuiltinOp("cbn", "cross-iteration BN, two earlier iterations", _cbn,
                  _pooled_oracle("cbn"), _pooled_case("cbn"), wrt=(0, 1, 2)),
        BuiltinOp("bn_lstm", "BN-LSTM layer, batch statistics, 1-2 steps", _bn_lstm, O.bn_lstm,
                  _lstm_case()),
        BuiltinOp("linear", "linear", F.linear, O.linear, _linear_case()),
        BuiltinOp("conv2d", "conv2d with stride and padding",
                  lambda x, w, b, s, p: F.conv2d(x, w, b, s, p), O.conv2d, _conv_case()),
        BuiltinOp("log_softmax", "log_softmax over the last axis",
                  lambda x: F.log_softmax(x, -1), O.log_softmax, _softmax_case()),
        BuiltinOp("max_pool2d", "max_pool2d 2x2", F.max_pool2d, O.max_pool2d, _pool_case()),
    ]
    return {op.name: op for op in ops}


BUILTIN_OPS = _ops()
