"""RMSprop, as ``torch.optim.RMSprop``."""
from ..backend import get_array_module
from .optimizer import Optimizer, non_negative


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), ``torch.optim.RMSprop``.

    ``g += weight_decay * p``; ``v = alpha v + (1 - alpha) g^2``; ``avg = sqrt(v) + eps``, or
    with ``centered`` ``gbar = gbar + (1 - alpha)(g - gbar)`` and ``avg = sqrt(v - gbar^2) + eps``;
    with momentum ``buf = momentum * buf + g / avg`` and ``p -= lr * buf``, else
    ``p -= lr * g / avg``.
    """

    state_keys = frozenset({"step", "square_avg", "momentum_buffer", "grad_avg"})
    hyper_checks = dict.fromkeys(("lr", "eps", "momentum", "weight_decay", "alpha"), non_negative)

    def required_state(self, group):
        return frozenset({"step", "square_avg"} | ({"momentum_buffer"} if group["momentum"] > 0 else set())
                         | ({"grad_avg"} if group["centered"] else set()))

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _update(self, p, g, state, group):
        xp = get_array_module(p)
        alpha, eps, momentum = group["alpha"], group["eps"], group["momentum"]
        g = self._l2_gradient(p, g, group)
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p)
            if momentum > 0:
                state["momentum_buffer"] = xp.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(p)
        state["step"] += 1
        v = state["square_avg"]
        v *= alpha
        v += (1 - alpha) * g * g
        if group["centered"]:
            gbar = state["grad_avg"]
            gbar += (1 - alpha) * (g - gbar)
            avg = xp.sqrt(v - gbar * gbar) + eps
        else:
            avg = xp.sqrt(v) + eps
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += g / avg
            p -= (group["lr"] * buf).astype(p.dtype, copy=False)
        else:
            p -= (group["lr"] * (g / avg)).astype(p.dtype, copy=False)
