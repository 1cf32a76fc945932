"""Stochastic gradient descent with momentum, as ``torch.optim.SGD``."""
from .optimizer import Optimizer, non_negative


class SGD(Optimizer):
    """SGD (``torch.optim.SGD``).

    ``g += weight_decay * p``; with momentum ``buf = momentum * buf + (1 - dampening) * g``
    (``buf = g`` on the first step) and ``g = g + momentum * buf`` if ``nesterov`` else
    ``g = buf``; then ``p -= lr * g``.
    """

    state_keys = frozenset({"momentum_buffer"})
    hyper_checks = dict.fromkeys(("lr", "momentum", "dampening", "weight_decay"), non_negative)

    def required_state(self, group):
        return frozenset()  # the buffer is made on the first step with momentum

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    @classmethod
    def _check(cls, group):
        super()._check(group)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _update(self, p, g, state, group):
        momentum = group["momentum"]
        g = self._l2_gradient(p, g, group)
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        p -= group["lr"] * g
