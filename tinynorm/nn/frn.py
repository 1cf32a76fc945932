"""FilterResponseNorm2d and TLU modules (Singh & Krishnan 2019).

See :func:`tinynorm.ops.frn.filter_response_norm` for the formulas. PyTorch has
no FRN; these follow its style: parameters ``weight`` (gamma, ones), ``bias``
(beta, zeros), ``tau`` (zeros) of shape (num_features,), and
``eps_learned`` (num_features,) initialized to 1e-4 when ``learnable_eps``.

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
from ..ops.frn import filter_response_norm, tlu
from .module import Module, Parameter

EPS_LEARNED_INIT = 1e-4


def _check_input(module, x, ranks):
    if x.ndim not in ranks:
        expect = " or ".join(f"{r}D" for r in ranks)
        raise ValueError(f"{type(module).__name__} expected {expect} input, got {x.ndim}D input "
                         f"of shape {tuple(x.shape)}")
    if x.shape[1] != module.num_features:
        raise ValueError(f"{type(module).__name__}({module.num_features}) got input with "
                         f"{x.shape[1]} channels (shape {tuple(x.shape)})")


class FilterResponseNorm2d(Module):
    """FRN over (N, C, H, W) or (N, C), followed by the TLU ``max(y, tau)`` unless ``tlu=False``."""

    def __init__(self, num_features, eps=1e-6, learnable_eps=False, tlu=True, dtype=np.float32):
        dtype = dtypes.parameter(dtype, "FilterResponseNorm2d")
        super().__init__()
        checks.integer(num_features, "FilterResponseNorm2d: num_features", 1)
        checks.eps(eps, "FilterResponseNorm2d: eps")
        self.num_features, self.eps = num_features, eps
        self.learnable_eps, self.tlu = learnable_eps, tlu
        self.weight = Parameter(np.ones(num_features, dtype=dtype))
        self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        if tlu:
            self.tau = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("tau", None)
        if learnable_eps:
            self.eps_learned = Parameter(np.full(num_features, EPS_LEARNED_INIT, dtype=dtype))
        else:
            self.register_parameter("eps_learned", None)

    def reset_parameters(self):
        self.weight.data[...] = 1
        self.bias.data[...] = 0
        if self.tau is not None:
            self.tau.data[...] = 0
        if self.eps_learned is not None:
            self.eps_learned.data[...] = EPS_LEARNED_INIT

    def forward(self, x):
        _check_input(self, x, (2, 4))
        return filter_response_norm(x, self.weight, self.bias, self.eps, self.eps_learned,
                                    tau=self.tau)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, learnable_eps={self.learnable_eps}, "
                f"tlu={self.tlu}")


class TLU(Module):
    """Thresholded Linear Unit ``max(x, tau[c])`` over (N, C, *), tau initialized to zeros."""

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
        return tlu(x, self.tau)

    def extra_repr(self):
        return f"{self.num_features}"
