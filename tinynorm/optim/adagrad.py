"""Adagrad, as ``torch.optim.Adagrad``."""
from ..backend import get_array_module
from .optimizer import Optimizer, non_negative


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011), ``torch.optim.Adagrad``.

    ``g += weight_decay * p``; ``clr = lr / (1 + (t - 1) lr_decay)``; ``s += g^2``
    (``s`` starts at ``initial_accumulator_value``); ``p -= clr * g / (sqrt(s) + eps)``.
    """

    state_keys = frozenset({"step", "sum"})
    hyper_checks = dict.fromkeys(
        ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"), non_negative)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10, maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))

    def _update(self, p, g, state, group):
        xp = get_array_module(p)
        g = self._l2_gradient(p, g, group)
        if not state:
            state["step"] = 0
            state["sum"] = xp.full_like(p, group["initial_accumulator_value"])
        state["step"] += 1
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        s = state["sum"]
        s += g * g
        p -= (clr * (g / (xp.sqrt(s) + group["eps"]))).astype(p.dtype, copy=False)
