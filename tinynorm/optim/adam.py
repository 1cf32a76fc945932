"""Adam and AdamW, as ``torch.optim.Adam`` and ``torch.optim.AdamW`` (fused kernel for contiguous arrays)."""
import math

import numpy as np

from ..backend import get_array_module, has_kernel
from ..kernels import kernels_for
from .optimizer import Optimizer, non_negative, require


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), ``torch.optim.Adam``.

    ``g += weight_decay * p``; ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
    """

    state_keys = frozenset({"step", "exp_avg", "exp_avg_sq"})
    hyper_checks = dict.fromkeys(("lr", "eps", "weight_decay"), non_negative)

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @classmethod
    def _check(cls, group):
        super()._check(group)
        betas = group["betas"]
        require(isinstance(betas, (tuple, list)) and len(betas) == 2, "betas (expected two values)",
                betas)
        for i, b in enumerate(betas):
            require(0.0 <= b < 1.0, f"beta parameter at index {i}", b)
        group["betas"] = tuple(betas)

    def _step_group(self, group):
        """The parameters whose arrays, gradients and moments are contiguous host arrays of a
        kernel dtype go through one multi-tensor kernel call per dtype; the rest (CUDA,
        strided) through :meth:`_update`. The flat views of a parameter and its moments are
        kept while they are the same arrays."""
        (b1, b2), lr = group["betas"], group["lr"]
        views = self.__dict__.setdefault("_flat_views", {})
        batches = {}
        for p in group["params"]:
            grad = p._grad
            if grad is None:
                continue
            a, g, state = p.data, grad.data, self.state.setdefault(p, {})
            hit = views.get(id(p))
            if hit is None or hit[0] is not a or not state or hit[1] is not state["exp_avg"] \
                    or hit[2] is not state["exp_avg_sq"]:
                if type(a) is not np.ndarray or not has_kernel(a) or not a.flags.c_contiguous \
                        or not _contiguous_moments(state, a):
                    self._update(a, g, state, group)
                    continue
                if not state:
                    _init_state(state, a, np)
                m, v = state["exp_avg"], state["exp_avg_sq"]
                hit = views[id(p)] = (a, m, v, a.reshape(-1), m.reshape(-1), v.reshape(-1))
            if type(g) is not np.ndarray:
                self._update(a, g, state, group)
                continue
            steps = _advance(state, a, np, b1, b2, lr)
            batch = batches.get(a.dtype)
            if batch is None:
                batch = batches[a.dtype] = ([], [], [], [], [])
            batch[0].append(hit[3])
            batch[1].append(g)
            batch[2].append(hit[4])
            batch[3].append(hit[5])
            batch[4].extend(steps)
        for ps, gs, ms, vs, steps in batches.values():
            kernels_for("adam", ps[0]).adam_update_many(
                ps, gs, ms, vs, steps, b1, b2, group["eps"], group["weight_decay"],
                self.decoupled, lr)

    def _update(self, p, g, state, group):
        xp = get_array_module(p)
        (b1, b2), lr, eps, wd = group["betas"], group["lr"], group["eps"], group["weight_decay"]
        if wd:
            if self.decoupled:
                p *= 1 - lr * wd
            else:
                g = g + wd * p
        step_size, bias2_sqrt = _advance(state, p, xp, b1, b2, lr)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if has_kernel(p) and p.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous:
            kernels_for("adam", p).adam_update(p, xp.ascontiguousarray(g, dtype=p.dtype), m, v,
                                               b1, b2, step_size, bias2_sqrt, eps)
            return
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        denom = xp.sqrt(v) / bias2_sqrt + eps
        p -= (step_size * m / denom).astype(p.dtype, copy=False)


def _init_state(state, p, xp):
    state["step"] = 0
    state["exp_avg"] = xp.zeros_like(p)
    state["exp_avg_sq"] = xp.zeros_like(p)


def _advance(state, p, xp, b1, b2, lr):
    """Count one more step in ``state`` (made on the first) and return its step size
    ``lr / (1 - b1^t)`` and ``sqrt(1 - b2^t)``."""
    if not state:
        _init_state(state, p, xp)
    state["step"] += 1
    t = state["step"]
    return lr / (1 - b1 ** t), math.sqrt(1 - b2 ** t)


def _contiguous_moments(state, a):
    """True for a fresh state, or moments that the kernel can update in place."""
    if not state:
        return True
    m, v = state["exp_avg"], state["exp_avg_sq"]
    return (type(m) is np.ndarray and type(v) is np.ndarray and m.dtype == a.dtype == v.dtype
            and m.flags.c_contiguous and v.flags.c_contiguous)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019), ``torch.optim.AdamW``: Adam with ``p *= 1 - lr * weight_decay`` first."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)
