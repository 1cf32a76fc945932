"""``weight_norm`` / ``remove_weight_norm`` (PyTorch's legacy ``torch.nn.utils`` helpers) and data-dependent init.

Weight Normalization reparameterizes a module's weight; the formula, defaults
and paper are :func:`tinynorm.ops.weight_norm.weight_norm`'s docstring
(``F.weight_norm``, PyTorch's ``torch._weight_norm``). ``weight_norm(module)``
replaces the Parameter ``weight`` by Parameters ``weight_g`` and
``weight_v``, the state_dict keys of PyTorch's legacy helper, and recomputes
``module.weight`` (a plain Tensor on the tape) before every forward.

How the recompute is hooked in: :class:`~tinynorm.nn.module.Module` has no
forward pre-hooks, so ``weight_norm`` swaps the instance's class for a
subclass (one per original class, cached, with the same ``__name__``) whose
``forward`` recomputes every weight-normalized parameter and then runs the
original ``forward``. ``isinstance(module, Linear)`` still holds, ``repr``
is unchanged, ``copy.deepcopy`` works (the subclass is an ordinary class;
nothing closes over the instance); ``remove_weight_norm`` of the last
parameter restores the original class. Pickling a weight-normalized module
itself is not supported (the subclass is created at run time); save its
``state_dict`` instead.
"""
import numpy as np

from .. import functional as F
from ..autograd import no_grad
from ..dims import dim as canonical_dim
from ..tensor import as_tensor
from .layers import Linear
from .module import Module, Parameter

_DIMS = "_weight_norm_dims"
_subclasses = {}


class _WeightNormed:
    """Mixin in front of a weight-normalized module's class: recompute the weights, then forward."""

    def forward(self, *args, **kwargs):
        for name in self.__dict__[_DIMS]:
            _recompute(self, name)
        return super().forward(*args, **kwargs)


def _weight_normed_class(cls):
    sub = _subclasses.get(cls)
    if sub is None:
        sub = type(cls.__name__, (_WeightNormed, cls),
                   {"__module__": __name__, "_weight_norm_base": cls,
                    "__doc__": cls.__doc__})
        _subclasses[cls] = sub
    return sub


def _recompute(module, name):
    dim = module.__dict__[_DIMS][name]
    w = F.weight_norm(module._parameters[name + "_v"], module._parameters[name + "_g"], dim)
    object.__setattr__(module, name, w)


def weight_norm(module, name="weight", dim=0):
    """Apply Weight Normalization (``F.weight_norm``) to parameter ``name`` of ``module``; returns ``module``.

    ``dim`` as in ``F.weight_norm`` (0: one ``g`` per output unit; ``None``:
    one ``g`` for the whole tensor). Adds Parameters
    ``name + '_g'`` (shape of the norms, e.g. (out, 1) for Linear,
    (out, 1, 1, 1) for Conv2d, () for ``dim=None``) and ``name + '_v'``
    (initialized to the current weight, so the module computes the same
    function as before), removes ``name`` from the parameters and recomputes
    it before each forward. The state_dict keys are those of PyTorch's legacy
    ``torch.nn.utils.weight_norm``.

    Negative ``dim`` counts from the end. (PyTorch's legacy helper reads
    ``dim=-1`` as "whole tensor", a quirk of ``norm_except_dim``; here ``-1``
    is the last axis, and ``None`` is the whole tensor.)
    """
    if not isinstance(module, Module):
        raise TypeError(f"weight_norm expects a tinynorm.nn.Module, got {type(module).__name__}")
    dims = module.__dict__.get(_DIMS, {})
    if name in dims:
        raise RuntimeError(f"Cannot register two weight_norm hooks on the same parameter {name}")
    weight = module._parameters.get(name)
    if weight is None:
        raise ValueError(f"weight_norm: {type(module).__name__} has no parameter named {name!r}")
    if weight.ndim == 0:
        raise ValueError(f"weight_norm: parameter {name!r} is a scalar; it needs at least one dimension")
    if dim is not None:
        dim = canonical_dim(dim, weight.ndim, "weight_norm")
    g = Parameter(F.norm_except_dim(weight, dim))
    v = Parameter(weight.data)
    del module._parameters[name]
    module.register_parameter(name + "_g", g)
    module.register_parameter(name + "_v", v)
    dims = dict(dims)
    dims[name] = dim
    object.__setattr__(module, _DIMS, dims)
    if not isinstance(module, _WeightNormed):
        module.__class__ = _weight_normed_class(type(module))
    _recompute(module, name)
    return module


def remove_weight_norm(module, name="weight"):
    """Undo :func:`weight_norm`: ``name`` becomes a plain Parameter holding ``g * v/||v||``; returns ``module``."""
    dims = module.__dict__.get(_DIMS, {})
    if name not in dims:
        raise ValueError(f"weight_norm of '{name}' not found in {module}")
    with no_grad():
        w = F.weight_norm(module._parameters[name + "_v"], module._parameters[name + "_g"],
                          dims[name])
    module.__dict__.pop(name, None)
    del module._parameters[name + "_g"]
    del module._parameters[name + "_v"]
    setattr(module, name, Parameter(w.data))
    dims = {k: d for k, d in dims.items() if k != name}
    if dims:
        object.__setattr__(module, _DIMS, dims)
    else:
        del module.__dict__[_DIMS]
        module.__class__ = module._weight_norm_base
    return module


def init_weight_norm_(module, batch, name="weight", init_scale=1.0, eps=1e-10, axis=None):
    """Data-dependent initialization of a weight-normalized layer (Salimans & Kingma 2016, sec. 3).

    On one ``batch`` of inputs, with ``g = 1`` and ``bias = 0`` the layer
    computes the pre-activations ``t = v.x/||v||``; then
    ``g = init_scale / sqrt(var[t] + eps)`` and ``bias = -mean[t] * g``, so
    that the layer's outputs on this batch have mean 0 and variance
    ``init_scale**2`` per output unit. ``v`` keeps its current values (the
    paper draws it from N(0, 0.05); any scale works since only its direction
    is used). Statistics are taken in float64 over every axis of the output
    but the unit axis ``axis`` (default: the last axis for Linear, axis 1
    otherwise, e.g. Conv2d's channels); ``batch`` is cast to the weight's dtype. ``eps`` (1e-10, as in the authors'
    code) keeps a unit with constant pre-activations finite.

    ``module`` must have had ``weight_norm(module, name, dim=0)`` applied and
    have a ``bias`` Parameter. Runs without recording on the tape; returns
    ``module``.
    """
    dims = module.__dict__.get(_DIMS, {})
    if name not in dims:
        raise ValueError(f"init_weight_norm_: apply weight_norm(module, {name!r}) first; "
                         f"{type(module).__name__} has no weight norm on {name!r}")
    if dims[name] != 0:
        raise ValueError(f"init_weight_norm_ needs one g per output unit (dim=0), "
                         f"got dim={dims[name]}")
    bias = module._parameters.get("bias")
    if bias is None:
        raise ValueError(f"init_weight_norm_ needs a bias to center the pre-activations; "
                         f"{type(module).__name__} has none")
    g = module._parameters[name + "_g"]
    if axis is None:
        axis = -1 if isinstance(module, Linear) else 1
    with no_grad():
        g.data[...] = 1
        bias.data[...] = 0
        x = as_tensor(batch, dtype=module._parameters[name + "_v"].dtype)
        t = np.asarray(module(x).data, dtype=np.float64)
    if not -t.ndim <= axis < t.ndim or t.shape[axis] != g.data.size:
        raise ValueError(f"init_weight_norm_: output of shape {t.shape} has no axis {axis} "
                         f"with {g.data.size} units")
    t = np.moveaxis(t, axis, 0).reshape(g.data.size, -1)
    if t.shape[1] < 2:
        raise ValueError(f"init_weight_norm_: need more than 1 value per unit, got output "
                         f"with {t.shape[1]}")
    mean = t.mean(axis=1)
    scale = init_scale / np.sqrt(t.var(axis=1) + eps)
    g.data[...] = scale.reshape(g.data.shape)
    bias.data[...] = (-mean * scale).reshape(bias.data.shape)
    with no_grad():
        _recompute(module, name)
    return module
