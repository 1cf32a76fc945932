"""``tinynorm.functional``: thin wrappers that validate arguments and call the ops.

Names and defaults mirror ``torch.nn.functional``.
"""
import warnings

import numpy as np

from . import checks, dims, dtypes, promotion
from .backend import check_float_dtype, get_array_module
from .ops import conv as _conv
from .ops import dropout as _dropout
from .ops import linear as _linear
from .ops import loss as _loss
from .ops import math as _math
from .ops import pooling as _pool
from .ops import shape as _shape
from .tensor import Tensor, as_tensor
from .ops.batch_norm import batch_norm  # noqa: F401
from .ops.batch_renorm import batch_renorm, renormalize  # noqa: F401
from .ops.frn import filter_response_norm, tlu  # noqa: F401
from .ops.group_norm import group_norm  # noqa: F401
from .ops.instance_norm import instance_norm  # noqa: F401
from .ops.layer_norm import layer_norm  # noqa: F401
from .ops.lrn import local_response_norm  # noqa: F401
from .ops.losses import (binary_cross_entropy, binary_cross_entropy_with_logits,  # noqa: F401
                         l1_loss, mse_loss, nll_loss, not_differentiable, smooth_l1_loss)
from .ops.rms_norm import rms_norm  # noqa: F401
from .ops.weight_norm import _weight_norm, norm_except_dim, weight_norm  # noqa: F401


def _pair(v, name, low=1):
    """An int or a 1- or 2-tuple of ints >= ``low`` as a pair (PyTorch's ``_pair``)."""
    return checks.ints(v, 2, name, low)


def _batched(input, name, fn):
    """Apply ``fn`` to (N, C, H, W) ``input``; an unbatched (C, H, W) input gets a batch of one, as in PyTorch."""
    if not isinstance(input, Tensor):
        input = as_tensor(input)
    if input.ndim == 3:
        out = fn(input.reshape((1,) + input.shape))
        if isinstance(out, tuple):
            return tuple(o.reshape(o.shape[1:]) for o in out)
        return out.reshape(out.shape[1:])
    if input.ndim != 4:
        raise ValueError(f"{name} expects input of shape (N, C, H, W) or (C, H, W), "
                         f"got rank {input.ndim} of shape {tuple(input.shape)}")
    return fn(input)


def relu(input):
    return _math.ReLU.apply(input)


def sigmoid(input):
    return as_tensor(input).sigmoid()


def tanh(input):
    return as_tensor(input).tanh()


def exp(input):
    return as_tensor(input).exp()


def log(input):
    return as_tensor(input).log()


def maximum(input, other):
    return as_tensor(input).maximum(other)


def matmul(input, other):
    return as_tensor(input) @ other


def cat(tensors, dim=0):
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat expects a non-empty sequence of tensors")
    ndim = tensors[0].ndim
    axis = dims.dim(dim, ndim, "cat")
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise RuntimeError(f"cat: zero-dimensional tensor (at position {i}) cannot be "
                               "concatenated; use stack")
    for t in tensors:
        if t.ndim != ndim or t.shape[:axis] + t.shape[axis + 1:] != \
                tensors[0].shape[:axis] + tensors[0].shape[axis + 1:]:
            raise ValueError(f"cat: sizes must match except in dimension {axis}, got "
                             f"{[tuple(u.shape) for u in tensors]}")
    return _shape.Concat.apply(*promotion.concatenated(tensors), dim=axis)


def stack(tensors, dim=0):
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack expects a non-empty sequence of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack expects tensors of equal shape, got {sorted(shapes)}")
    axis = dims.dim(dim, tensors[0].ndim, "stack", extra=1)
    return _shape.Stack.apply(*promotion.concatenated(tensors), dim=axis)


def linear(input, weight, bias=None):
    """``y = x W^T + b`` for ``x`` of shape (*, in_features).

    A 2-D NumPy input of the weight's dtype (and a bias of that dtype, or
    none) records PyTorch's tape: ``TBackward0`` feeding ``AddmmBackward0``
    (``MmBackward0`` without a bias); another rank is flattened to 2-D around
    it (``ViewBackward0``), as PyTorch does for a 3-D input.
    """
    input, weight = (t if isinstance(t, Tensor) else as_tensor(t) for t in (input, weight))
    if weight.ndim != 2:
        raise ValueError(f"linear expects weight of shape (out_features, in_features), got shape "
                         f"{tuple(weight.shape)}")
    if input.ndim < 1:
        raise ValueError("linear expects input of shape (*, in_features), got a 0-d tensor")
    check_float_dtype(input.data, "linear input")
    if input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input has {input.shape[-1]} features but weight expects {weight.shape[1]}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: bias has shape {tuple(bias.shape)}, expected ({weight.shape[0]},)")
    dtype = weight.data.dtype
    if (input.data.dtype == dtype and type(input.data) is np.ndarray
            and type(weight.data) is np.ndarray and (bias is None or (
                isinstance(bias, Tensor) and bias.data.dtype == dtype
                and type(bias.data) is np.ndarray))):
        wt = _linear.T.apply(weight)
        x = input if input.ndim == 2 else input.reshape(-1, input.shape[-1])
        out = _linear.Linear.apply(x, wt) if bias is None else _linear.Linear.apply(bias, x, wt)
        return out if input.ndim == 2 else out.reshape(*input.shape[:-1], weight.shape[0])
    out = input @ weight.T
    return out if bias is None else out + bias


def log_softmax(input, dim=-1, dtype=None):
    """``x - log(sum(exp(x)))`` along ``dim``; ``dtype`` casts the input first, as in PyTorch."""
    input = as_tensor(input)
    check_float_dtype(input.data, "log_softmax input")
    if dtype is not None:
        dtype = dtypes.parse(dtype, "log_softmax")
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"log_softmax: dtype must be float32 or float64, got {dtype}")
    if input.ndim == 0:
        dims.dim(dim, 0, "log_softmax")
        return _loss.LogSoftmax.apply(input.reshape(1), dim=0, dtype=dtype).reshape(())
    return _loss.LogSoftmax.apply(input, dim=dims.dim(dim, input.ndim, "log_softmax"), dtype=dtype)


def softmax(input, dim=-1, dtype=None):
    return log_softmax(input, dim, dtype).exp()


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy of logits against class indices or class probabilities, as PyTorch's.

    ``input`` is (N, C), (N, C, d1, ...) or unbatched (C,). ``target`` holds class
    indices of shape (N,), (N, d1, ...) or () (fused with log-softmax), or class
    probabilities of ``input``'s shape: ``loss_n = -sum_c weight_c p_nc log softmax(x_n)_c``.
    ``label_smoothing`` eps mixes the target with the uniform distribution:
    ``(1 - eps) * target + eps / C``.
    """
    input = as_tensor(input)
    check_float_dtype(input.data, "cross_entropy input")
    if input.ndim < 1:
        raise ValueError("cross_entropy expects logits of shape (N, C, ...) or (C,), got a scalar")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if type(ignore_index) is not int:
        ignore_index = checks.integer(ignore_index, "cross_entropy: ignore_index")
    if type(label_smoothing) is not float or not 0.0 <= label_smoothing <= 1.0:
        checks.number(label_smoothing, "cross_entropy: label_smoothing", 0.0, 1.0)
    c = input.shape[1] if input.ndim > 1 else input.shape[0]
    w = None
    if weight is not None:
        w = as_tensor(weight).data
        if w.shape != (c,):
            raise ValueError(f"cross_entropy: weight should be defined either for all {c} classes "
                             f"or no classes, but got weight of shape {tuple(w.shape)}")
        w = w.astype(input.dtype)
    target = Tensor._from_op(target, False) if type(target) is np.ndarray else as_tensor(target)
    if target.dtype.kind == "f":
        if isinstance(weight, Tensor) and weight.requires_grad:   # a gradient as in PyTorch
            w = promotion.cast(weight, input.dtype)
        return _soft_cross_entropy(input, target, w, ignore_index, reduction, label_smoothing)
    not_differentiable(weight, "nll_loss_forward", "weight")
    if target.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy: target must hold integer class indices or float class "
                         f"probabilities, got {target.dtype}")
    if input.ndim == 1:
        if target.ndim != 0:
            raise ValueError(f"cross_entropy: unbatched logits of shape {tuple(input.shape)} need a "
                             f"scalar target, got shape {tuple(target.shape)}")
        out = cross_entropy(input.reshape(1, c), target.data.reshape(1), weight, ignore_index,
                            reduction, label_smoothing)
        return out.reshape(()) if reduction == "none" else out
    expect = (input.shape[0],) + input.shape[2:]
    if tuple(target.shape) != expect:
        raise ValueError(f"cross_entropy: target shape {tuple(target.shape)} does not match logits "
                         f"{tuple(input.shape)}; expected {expect}")
    t = target.data
    if t.size and (t.min() < 0 or t.max() >= c) and _out_of_range(t, ignore_index, c):
        raise ValueError(f"cross_entropy: target values must lie in [0, {c}) or equal "
                         f"ignore_index {ignore_index}")
    if input.ndim > 2:
        axes = (0,) + tuple(range(2, input.ndim)) + (1,)
        flat = input.permute(axes).reshape(-1, c)
        out = _loss.CrossEntropy.apply(flat, t.reshape(-1), weight=w, ignore_index=ignore_index,
                                       reduction=reduction, label_smoothing=label_smoothing)
        return out.reshape(expect) if reduction == "none" else out
    return _loss.CrossEntropy.apply(input, target, weight=w, ignore_index=ignore_index,
                                    reduction=reduction, label_smoothing=label_smoothing)


def _out_of_range(t, ignore_index, c):
    valid = t != ignore_index
    return bool(valid.any() and (t[valid].min() < 0 or t[valid].max() >= c))


def _soft_cross_entropy(input, target, w, ignore_index, reduction, label_smoothing):
    """Cross-entropy against class probabilities: tape ops, so the gradient needs no extra code."""
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"cross_entropy: class-probability target shape {tuple(target.shape)} "
                         f"must equal the logits shape {tuple(input.shape)}")
    if ignore_index != -100:
        raise ValueError("cross_entropy: ignore_index is not supported for floating point "
                         "(class-probability) targets")
    axis = 1 if input.ndim > 1 else 0
    c = input.shape[axis]
    p = promotion.cast(target, input.dtype)          # on the tape: the target's gradient flows
    if label_smoothing:
        p = p * (1 - label_smoothing) + label_smoothing / c
    if w is not None:
        p = p * w.reshape((c,) + (1,) * (input.ndim - axis - 1))
    per = -(log_softmax(input, axis) * p).sum(dim=axis)
    if reduction == "none":
        return per
    total = per.sum()
    if reduction == "sum":
        return total
    return total * (1.0 / per.data.size if per.data.size else float("nan"))


def dropout(input, p=0.5, training=True):
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not isinstance(input, Tensor):
        input = as_tensor(input)
    check_float_dtype(input.data, "dropout input")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0
    return _dropout.Dropout.apply(input, p=p)


def dropout2d(input, p=0.5, training=True):
    """Zero whole channels (axis 1) of ``input`` with probability ``p`` and scale by ``1/(1-p)``,
    as PyTorch's ``dropout2d`` does: an (N, C) input loses single elements, (N, C, L) whole rows."""
    from . import random
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    input = input if isinstance(input, Tensor) else as_tensor(input)
    check_float_dtype(input.data, "dropout2d input")
    if input.ndim not in (2, 3, 4):
        raise ValueError(f"dropout2d expects input of shape (N, C, H, W), (N, C, L) or (N, C), got shape "
                         f"{tuple(input.shape)}")
    if input.ndim == 2:
        warnings.warn("dropout2d: Received a 2-D input to dropout2d, which is deprecated (as in "
                      "PyTorch); like PyTorch it drops single elements then. Use dropout instead.",
                      UserWarning, stacklevel=3)
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0
    channels = input.shape[:2]
    keep = random.default_generator().random(channels) >= p
    mask = (keep.astype(input.dtype) / input.dtype.type(1 - p)).reshape(
        channels + (1,) * (input.ndim - len(channels)))
    return input * get_array_module(input.data).asarray(mask)


def conv_geometry(kernel_size, stride=1, padding=0, dilation=1):
    """(stride, padding, dilation) as pairs of ints; padding may be 'valid' or 'same'."""
    stride, dilation = _pair(stride, "conv2d: stride"), _pair(dilation, "conv2d: dilation")
    kh, kw = kernel_size
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        if stride != (1, 1):
            raise ValueError("conv2d: padding='same' is not supported for strided convolutions")
        tot = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
        if tot[0] % 2 or tot[1] % 2:
            raise ValueError("conv2d: padding='same' needs an odd effective kernel size in tinynorm")
        padding = (tot[0] // 2, tot[1] // 2)
    elif isinstance(padding, str):
        raise ValueError(f"conv2d: padding must be 'valid', 'same', an int or a tuple of ints, "
                         f"got {padding!r}")
    return stride, _pair(padding, "conv2d: padding", 0), dilation


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation, PyTorch's ``conv2d`` (padding may be 'valid' or 'same').

    ``input`` is (N, C, H, W) or unbatched (C, H, W).
    """
    weight = as_tensor(weight)
    if weight.ndim != 4:
        raise ValueError(f"conv2d expects weight of shape (Cout, Cin/groups, kH, kW), got rank {weight.ndim}")
    groups = checks.integer(groups, "conv2d: groups", 1)
    stride, padding, dilation = conv_geometry(weight.shape[2:], stride, padding, dilation)
    return _batched(input, "conv2d", lambda x: _conv2d(x, weight, bias, stride, padding, dilation,
                                                       groups))


def _conv2d(input, weight, bias, stride, padding, dilation, groups):
    check_float_dtype(input.data, "conv2d input")
    if input.dtype != weight.dtype:
        raise ValueError(f"conv2d: input dtype {input.dtype} differs from weight dtype {weight.dtype}")
    cin, cout = input.shape[1], weight.shape[0]
    if cin % groups or cout % groups:
        raise ValueError(f"conv2d: in_channels {cin} and out_channels {cout} must be divisible by groups {groups}")
    if weight.shape[1] * groups != cin:
        raise ValueError(
            f"conv2d: input has {cin} channels but weight expects {weight.shape[1] * groups} "
            f"({weight.shape[1]} per group x {groups} groups)")
    if bias is not None and bias.shape != (cout,):
        raise ValueError(f"conv2d: bias shape {bias.shape} does not match out_channels {cout}")
    return _conv.Conv2d.apply(input, weight, bias, stride=stride, padding=padding,
                              dilation=dilation, groups=groups)


def pool_geometry(kernel_size, stride, padding, dilation, name):
    """(kernel, stride, padding, dilation) pairs, checked as PyTorch checks them."""
    k = _pair(kernel_size, f"{name}: kernel_size")
    empty = isinstance(stride, (tuple, list)) and len(stride) == 0
    s = k if stride is None or empty else _pair(stride, f"{name}: stride")
    p, d = _pair(padding, f"{name}: padding", 0), _pair(dilation, f"{name}: dilation")
    if p[0] * 2 > k[0] or p[1] * 2 > k[1]:
        raise ValueError(f"{name}: padding {p} should be at most half of kernel size {k}")
    return k, s, p, d


def _pool_output(input, k, s, p, d, ceil_mode, name):
    from .kernels.cpu.pooling import pool_output_size
    check_float_dtype(input.data, name)
    out = tuple(pool_output_size(input.shape[2 + i], k[i], s[i], p[i], d[i], ceil_mode) for i in (0, 1))
    if out[0] <= 0 or out[1] <= 0:
        raise ValueError(f"{name}: input {input.shape[2:]} is too small for kernel {k}; output {out}")
    return out


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Window maxima; ``return_indices`` also returns each maximum's flat ``h*W + w`` in its plane."""
    k, s, p, d = pool_geometry(kernel_size, stride, padding, dilation, "max_pool2d")

    def pool(x):
        out = _pool_output(x, k, s, p, d, ceil_mode, "max_pool2d")
        found = {} if return_indices else None
        y = _pool.MaxPool2d.apply(x, kernel_size=k, stride=s, padding=p, dilation=d, out_size=out,
                                  indices_out=found)
        return (y, Tensor(found["indices"])) if return_indices else y

    return _batched(input, "max_pool2d", pool)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Window means; ``divisor_override`` divides each window's sum by that number instead."""
    k, s, p, _ = pool_geometry(kernel_size, stride, padding, 1, "avg_pool2d")
    if divisor_override is not None:
        divisor_override = checks.integer(divisor_override, "avg_pool2d: divisor_override", 1)

    def pool(x):
        out = _pool_output(x, k, s, p, (1, 1), ceil_mode, "avg_pool2d")
        if divisor_override is None:
            return _pool.AvgPool2d.apply(x, kernel_size=k, stride=s, padding=p,
                                         count_include_pad=bool(count_include_pad), out_size=out)
        mean = _pool.AvgPool2d.apply(x, kernel_size=k, stride=s, padding=p,
                                     count_include_pad=False, out_size=out)
        counts = [np.minimum(np.arange(o) * s[i] - p[i] + k[i], x.shape[2 + i])
                  - np.maximum(np.arange(o) * s[i] - p[i], 0) for i, o in enumerate(out)]
        scale = np.outer(counts[0], counts[1]).astype(x.dtype) / x.dtype.type(divisor_override)
        return mean * get_array_module(x.data).asarray(scale)

    return _batched(input, "avg_pool2d", pool)


def adaptive_avg_pool2d(input, output_size):
    """Means over PyTorch's adaptive windows; ``None`` in ``output_size`` keeps that input size."""
    if isinstance(output_size, int) or output_size is None:
        output_size = (output_size, output_size)
    items = tuple(output_size)
    if len(items) == 1:
        items = items * 2
    if len(items) != 2:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got {output_size!r}")

    def pool(x):
        check_float_dtype(x.data, "adaptive_avg_pool2d")
        if 0 in x.shape[1:]:
            raise ValueError(f"adaptive_avg_pool2d: input of shape {tuple(x.shape)} has an empty "
                             "channel or spatial axis, so a window has no values to average")
        size = tuple(x.shape[2 + i] if v is None else v for i, v in enumerate(items))
        size = _pair(size, "adaptive_avg_pool2d: output_size")
        return _pool.AdaptiveAvgPool2d.apply(x, out_size=size)

    return _batched(input, "adaptive_avg_pool2d", pool)
