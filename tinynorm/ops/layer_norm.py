"""Layer Normalization: GroupNorm's case of one group over a sample's trailing axes.

Viewing the input as (rows, 1, prod(normalized_shape), 1) makes every sample
one group whose K slots each have their own gamma and beta, which is exactly
what :class:`~tinynorm.ops.group_norm.GroupNorm` computes. LN therefore has
no Function of its own: one kernel family (``kernels/*/group_norm.py``, CPU
and CUDA) with one stats -> apply split (row statistics, then the
normalize-and-affine pass, fused; the same split backward) and one double
backward serve GN, LN and IN, so a fix or a speed-up to one is one to all.
The node on the tape is named ``GroupNorm``.
"""
import math

from .. import checks
from .group_norm import float_input, normalize_rows


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer Normalization, ``torch.nn.functional.layer_norm``.

    Every sample (every index of the leading axes) is normalized over its
    trailing ``normalized_shape`` axes, M = prod(normalized_shape) values, by
    their mean and biased variance, then scaled and shifted elementwise::

        y = (x - mean) / sqrt(var + eps) * weight + bias

    ``normalized_shape`` is an int or a sequence of ints, non-empty, and must
    equal the input's trailing axes; ``weight`` and ``bias`` have shape
    ``normalized_shape`` or are None (1 and 0); ``eps=1e-5``. A single
    normalized value gives ``bias``. Runs as GroupNorm over the view
    (rows, 1, M, 1) (see the module docstring).

    Layer Normalization, J. L. Ba, J. R. Kiros and G. E. Hinton, arXiv:1607.06450, 2016.
    """
    input = float_input(input, "layer_norm")
    normalized_shape = checks.normalized_shape(normalized_shape, "layer_norm: normalized_shape")
    k = len(normalized_shape)
    if k == 0:
        raise ValueError("layer_norm: normalized_shape must have at least one dimension")
    if input.ndim < k or tuple(input.shape[input.ndim - k:]) != normalized_shape:
        raise ValueError(f"layer_norm: given normalized_shape={list(normalized_shape)}, expected "
                         f"input with shape [*, {', '.join(map(str, normalized_shape))}], "
                         f"but got input of size {list(input.shape)}")
    checks.param(weight, normalized_shape, "weight", "layer_norm")
    checks.param(bias, normalized_shape, "bias", "layer_norm")
    rows = math.prod(int(d) for d in input.shape[:input.ndim - k])
    return normalize_rows(input, weight, bias, (rows, 1, math.prod(normalized_shape), 1), eps)
