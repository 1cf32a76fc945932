"""``tinynorm.functional``: thin wrappers that validate arguments and call the ops.

Names and defaults mirror ``torch.nn.functional``.
"""
import numpy as np

from .backend import check_float_dtype, get_array_module
from .ops import conv as _conv
from .ops import batch_norm as _bn
from .ops import dropout as _dropout
from .ops import loss as _loss
from .ops import math as _math
from .ops import pooling as _pool
from .ops import shape as _shape
from .tensor import Tensor, as_tensor
from .ops.batch_renorm import batch_renorm, renormalize  # noqa: F401
from .ops.frn import filter_response_norm, tlu  # noqa: F401
from .ops.group_norm import group_norm, instance_norm, layer_norm  # noqa: F401
from .ops.lrn import local_response_norm  # noqa: F401
from .ops.rms_norm import rms_norm  # noqa: F401
from .ops.weight_norm import _weight_norm, norm_except_dim  # noqa: F401


def _pair(v, name):
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    if len(v) != 2 or not all(isinstance(i, int) for i in v):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return v


def relu(input):
    return _math.ReLU.apply(input)


def sigmoid(input):
    return _math.Sigmoid.apply(input)


def tanh(input):
    return _math.Tanh.apply(input)


def exp(input):
    return _math.Exp.apply(input)


def log(input):
    return _math.Log.apply(input)


def maximum(input, other):
    return _math.Maximum.apply(input, other)


def matmul(input, other):
    return as_tensor(input) @ other


def cat(tensors, dim=0):
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat expects a non-empty sequence of tensors")
    return _shape.Concat.apply(*tensors, dim=dim)


def stack(tensors, dim=0):
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack expects a non-empty sequence of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack expects tensors of equal shape, got {sorted(shapes)}")
    return _shape.Stack.apply(*tensors, dim=dim)


def linear(input, weight, bias=None):
    """``y = x W^T + b``."""
    if input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input has {input.shape[-1]} features but weight expects {weight.shape[1]}")
    out = input @ weight.T
    return out + bias if bias is not None else out


def log_softmax(input, dim=-1):
    return _loss.LogSoftmax.apply(input, dim=dim)


def softmax(input, dim=-1):
    return log_softmax(input, dim).exp()


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy of logits (N, C) against class indices (N,), fused with log-softmax."""
    if input.ndim != 2:
        raise ValueError(f"cross_entropy expects logits of shape (N, C), got {input.shape}")
    target = as_tensor(target)
    if target.ndim != 1 or target.shape[0] != input.shape[0]:
        raise ValueError(
            f"cross_entropy: target shape {target.shape} does not match logits batch {input.shape[0]}")
    if target.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy: target must hold integer class indices, got {target.dtype}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    t = target.data
    valid = t != ignore_index
    if valid.any() and (t[valid].min() < 0 or t[valid].max() >= input.shape[1]):
        raise ValueError(f"cross_entropy: target values must lie in [0, {input.shape[1]})")
    if weight is not None and label_smoothing:
        raise NotImplementedError("cross_entropy: weight together with label_smoothing")
    w = None if weight is None else as_tensor(weight).data.astype(input.dtype)
    return _loss.CrossEntropy.apply(input, target, weight=w, ignore_index=ignore_index,
                                    reduction=reduction, label_smoothing=label_smoothing)


def dropout(input, p=0.5, training=True):
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0
    return _dropout.Dropout.apply(input, p=p)


def conv_geometry(kernel_size, stride=1, padding=0, dilation=1):
    """(stride, padding, dilation) as pairs of ints; padding may be 'valid' or 'same'."""
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
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
    return stride, _pair(padding, "padding"), dilation


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation, PyTorch's ``conv2d`` (padding may be 'valid' or 'same')."""
    if input.ndim != 4:
        raise ValueError(f"conv2d expects input of shape (N, C, H, W), got rank {input.ndim}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d expects weight of shape (Cout, Cin/groups, kH, kW), got rank {weight.ndim}")
    check_float_dtype(input.data, "conv2d input")
    if input.dtype != weight.dtype:
        raise ValueError(f"conv2d: input dtype {input.dtype} differs from weight dtype {weight.dtype}")
    cin, cout = input.shape[1], weight.shape[0]
    if groups < 1 or cin % groups or cout % groups:
        raise ValueError(f"conv2d: in_channels {cin} and out_channels {cout} must be divisible by groups {groups}")
    if weight.shape[1] * groups != cin:
        raise ValueError(
            f"conv2d: input has {cin} channels but weight expects {weight.shape[1] * groups} "
            f"({weight.shape[1]} per group x {groups} groups)")
    stride, padding, dilation = conv_geometry(weight.shape[2:], stride, padding, dilation)
    if bias is not None and bias.shape != (cout,):
        raise ValueError(f"conv2d: bias shape {bias.shape} does not match out_channels {cout}")
    args = (input, weight) if bias is None else (input, weight, bias)
    return _conv.Conv2d.apply(*args, stride=stride, padding=padding, dilation=dilation, groups=groups)


def _pool_geometry(input, kernel_size, stride, padding, dilation, ceil_mode, name):
    from .kernels.cpu.pooling import pool_output_size
    if input.ndim != 4:
        raise ValueError(f"{name} expects input of shape (N, C, H, W), got rank {input.ndim}")
    check_float_dtype(input.data, name)
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    p, d = _pair(padding, "padding"), _pair(dilation, "dilation")
    if p[0] * 2 > k[0] or p[1] * 2 > k[1]:
        raise ValueError(f"{name}: padding {p} should be at most half of kernel size {k}")
    out = tuple(pool_output_size(input.shape[2 + i], k[i], s[i], p[i], d[i], ceil_mode) for i in (0, 1))
    if out[0] <= 0 or out[1] <= 0:
        raise ValueError(f"{name}: input {input.shape[2:]} is too small for kernel {k}; output {out}")
    return k, s, p, d, out


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    k, s, p, d, out = _pool_geometry(input, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
    return _pool.MaxPool2d.apply(input, kernel_size=k, stride=s, padding=p, dilation=d, out_size=out)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    k, s, p, _, out = _pool_geometry(input, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    return _pool.AvgPool2d.apply(input, kernel_size=k, stride=s, padding=p,
                                 count_include_pad=bool(count_include_pad), out_size=out)


def adaptive_avg_pool2d(input, output_size):
    if input.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d expects (N, C, H, W), got rank {input.ndim}")
    check_float_dtype(input.data, "adaptive_avg_pool2d")
    size = _pair(output_size, "output_size") if not isinstance(output_size, int) else (output_size,) * 2
    size = tuple(input.shape[2 + i] if s is None else s for i, s in enumerate(size))
    if min(size) <= 0:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {size}")
    return _pool.AdaptiveAvgPool2d.apply(input, out_size=size)


def _check_channel_vector(t, c, what):
    if t is not None and tuple(t.shape) != (c,):
        raise ValueError(f"batch_norm: {what} has shape {tuple(t.shape)}, expected ({c},) for {c} channels")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, combine=None):
    """Batch Normalization (Ioffe & Szegedy 2015), ``torch.nn.functional.batch_norm``.

    ``y = weight * (x - mean) / sqrt(var + eps) + bias`` per channel (axis 1), with
    the batch's mean and biased variance over every other axis in training (or when
    no running statistics are given) and the running statistics otherwise.
    Training updates ``running = (1 - momentum) * running + momentum * batch`` with
    the *unbiased* batch variance. ``combine`` is the hook where synchronized,
    cross-iteration and cross-mini-batch variants merge statistics.
    """
    if not isinstance(input, Tensor):
        input = as_tensor(input)
    if input.ndim < 2:
        raise ValueError(f"batch_norm expects input of shape (N, C, ...), got rank {input.ndim}")
    check_float_dtype(input.data, "batch_norm input")
    c = input.shape[1]
    for t, what in ((running_mean, "running_mean"), (running_var, "running_var"),
                    (weight, "weight"), (bias, "bias")):
        _check_channel_vector(t, c, what)
    xp = get_array_module(input.data)
    use_batch = training or running_mean is None or running_var is None
    combine = combine or _bn.IdentityCombine()
    if use_batch:
        identity = isinstance(combine, _bn.IdentityCombine)
        if identity and training and input.data.size <= c:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {tuple(input.shape)}")
        count, mean, m2 = combine.stats(*_bn.local_stats(input.data))
        if not identity and training and float(count.min()) <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {tuple(input.shape)}")
        var = m2 / count
        if training and running_mean is not None and running_var is not None:
            m = float(momentum)
            rm, rv = running_mean.data, running_var.data
            rm[...] = (1 - m) * rm + m * mean
            rv[...] = (1 - m) * rv + m * (m2 / (count - 1))
    else:
        count = None
        mean = running_mean.data.astype(np.float64)
        var = running_var.data.astype(np.float64)
    invstd = 1.0 / xp.sqrt(var + eps)
    affine = [t for t in (weight, bias) if t is not None]
    return _bn.BatchNorm.apply(input, *affine, mean=mean, invstd=invstd, count=count,
                               batch_stats=use_batch, combine=combine,
                               has_weight=weight is not None, has_bias=bias is not None)
