"""Adadelta, as ``torch.optim.Adadelta``."""
from ..backend import get_array_module
from .optimizer import Optimizer, fraction, non_negative


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012), ``torch.optim.Adadelta``.

    ``g += weight_decay * p``; ``v = rho v + (1 - rho) g^2``;
    ``delta = sqrt(u + eps) / sqrt(v + eps) * g``; ``u = rho u + (1 - rho) delta^2``;
    ``p -= lr * delta``.
    """

    state_keys = frozenset({"step", "square_avg", "acc_delta"})
    hyper_checks = {"lr": non_negative, "rho": fraction, "eps": non_negative,
                    "weight_decay": non_negative}

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _update(self, p, g, state, group):
        xp = get_array_module(p)
        rho, eps = group["rho"], group["eps"]
        g = self._l2_gradient(p, g, group)
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p)
            state["acc_delta"] = xp.zeros_like(p)
        state["step"] += 1
        v, u = state["square_avg"], state["acc_delta"]
        v *= rho
        v += (1 - rho) * g * g
        delta = xp.sqrt(u + eps) / xp.sqrt(v + eps) * g
        u *= rho
        u += (1 - rho) * delta * delta
        p -= (group["lr"] * delta).astype(p.dtype, copy=False)
