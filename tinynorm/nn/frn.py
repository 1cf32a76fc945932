"""FilterResponseNorm2d and TLU modules.

The formulas, defaults and paper are :func:`tinynorm.ops.frn.filter_response_norm`'s
and :func:`tinynorm.ops.frn.tlu`'s docstrings. PyTorch has no FRN; these follow
its style: parameters ``weight`` (gamma, ones), ``bias`` (beta, zeros), ``tau``
(zeros) of shape (num_features,), and ``eps_learned`` (num_features,)
initialized to 1e-4 when ``learnable_eps``.

Decisions:

* ``FilterResponseNorm2d`` applies the TLU by default (``tlu=True``), because
  the paper pairs them: FRN does no mean centering and the learned threshold
  tau is what compensates for it. The pair runs as one fused kernel.
  ``tlu=False`` gives plain FRN (no ``tau`` parameter); compose with
  :class:`TLU` to apply it separately.
* The learned epsilon is per channel, like gamma, beta and tau; the effective
  epsilon is ``|eps| + |eps_learned|`` (the fixed ``eps`` keeps it positive).
* Input is (N, C, H, W) or fully connected (N, C); for the latter every plane
  holds one value, so ``nu2 = x^2`` and ``learnable_eps=True`` is advised, as
  in the paper.
"""
import numpy as np

from .. import checks, dtypes
from .. import functional as F
from .module import Module, Parameter, check_channels, register_affine, reset_affine

EPS_LEARNED_INIT = 1e-4


class FilterResponseNorm2d(Module):
    """FRN (``F.filter_response_norm``) over (N, C, H, W) or (N, C), then the TLU unless ``tlu=False``."""

    def __init__(self, num_features, eps=1e-6, learnable_eps=False, tlu=True, dtype=np.float32):
        dtype = dtypes.parameter(dtype, "FilterResponseNorm2d")
        super().__init__()
        checks.integer(num_features, "FilterResponseNorm2d: num_features", 1)
        checks.eps(eps, "FilterResponseNorm2d: eps")
        self.num_features, self.eps = num_features, eps
        self.learnable_eps, self.tlu = learnable_eps, tlu
        register_affine(self, num_features, dtype)
        if tlu:
            self.tau = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("tau", None)
        if learnable_eps:
            self.eps_learned = Parameter(np.full(num_features, EPS_LEARNED_INIT, dtype=dtype))
        else:
            self.register_parameter("eps_learned", None)

    def reset_parameters(self):
        reset_affine(self)
        if self.tau is not None:
            self.tau.data[...] = 0
        if self.eps_learned is not None:
            self.eps_learned.data[...] = EPS_LEARNED_INIT

    def forward(self, x):
        check_channels(self, x, (2, 4))
        return F.filter_response_norm(x, self.weight, self.bias, self.eps, self.eps_learned,
                                      tau=self.tau)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, learnable_eps={self.learnable_eps}, "
                f"tlu={self.tlu}")


class TLU(Module):
    """Thresholded Linear Unit (``F.tlu``) over (N, C, *), tau initialized to zeros."""

    def __init__(self, num_features, dtype=np.float32):
        dtype = dtypes.parameter(dtype, "TLU")
        super().__init__()
        checks.integer(num_features, "TLU: num_features", 1)
        self.num_features = num_features
        self.tau = Parameter(np.zeros(num_features, dtype=dtype))

    def reset_parameters(self):
        self.tau.data[...] = 0

    def forward(self, x):
        if x.ndim < 2:
            raise ValueError(f"TLU expected input of shape (N, C, ...), got {x.ndim}D input")
        if x.shape[1] != self.num_features:
            raise ValueError(f"TLU({self.num_features}) got input with {x.shape[1]} channels "
                             f"(shape {tuple(x.shape)})")
        return F.tlu(x, self.tau)

    def extra_repr(self):
        return f"{self.num_features}"
