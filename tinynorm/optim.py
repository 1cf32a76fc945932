"""SGD, Adam and AdamW with PyTorch's update rules and defaults."""
import math

import numpy as np

from . import profiler, versions
from .backend import get_array_module
from .kernels import kernels_for


def _require(ok, what, value):
    """PyTorch's optimizer checks, written so that NaN fails them (every comparison with NaN is False)."""
    if not ok:
        raise ValueError(f"Invalid {what}: {value}")


def _non_negative(value, what):
    _require(isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
             and 0.0 <= value < math.inf, what, value)


class Optimizer:
    state_keys = frozenset()

    def __init__(self, params, defaults):
        from .tensor import Tensor
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors, but got a Tensor")
        try:
            self.params = [p for p in params]
        except TypeError:
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors (e.g. model.parameters()), but got {type(params).__name__}") from None
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        for p in self.params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if p._node is not None:
                raise ValueError("can't optimize a non-leaf Tensor")
            if p.dtype.kind != "f":
                raise ValueError(f"optimizer can only optimize floating point Tensors (an update "
                                 f"would be truncated), got {p.dtype}")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("some parameters appear more than once in the parameter list; each "
                             "would be updated once per appearance")
        self.defaults = dict(defaults)
        for key, value in defaults.items():
            setattr(self, key, value)
        self.state = {}

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data[...] = 0

    @profiler.step
    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is not None and p.grad.shape != p.shape:
                raise RuntimeError(f"optimizer: parameter {i} has shape {p.shape} but its .grad has "
                                   f"shape {p.grad.shape}")
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self._update(i, p.data, p.grad.data, self.state.setdefault(i, {}))
        versions.bump(self.params)

    def state_dict(self):
        return {"state": {i: dict(s) for i, s in self.state.items()}, "defaults": dict(self.defaults)}

    def load_state_dict(self, state_dict):
        """Restore the per-parameter state of :meth:`state_dict` (copied; shapes must match)."""
        if not isinstance(state_dict, dict) or not isinstance(state_dict.get("state"), dict):
            raise ValueError("optimizer.load_state_dict expects the dict of state_dict(), with a "
                             "'state' entry")
        name = type(self).__name__
        defaults = state_dict.get("defaults")
        if defaults is not None and (not isinstance(defaults, dict) or set(defaults) != set(self.defaults)):
            theirs = sorted(defaults) if isinstance(defaults, dict) else defaults
            raise ValueError(f"{name}.load_state_dict: the state comes from another optimizer: its "
                             f"hyperparameters are {theirs}, {name}'s are {sorted(self.defaults)}")
        state = {}
        for i, entry in state_dict["state"].items():
            try:
                i = int(i)
            except (TypeError, ValueError):
                raise ValueError(f"{name}.load_state_dict: state key {i!r} is not a parameter "
                                 "index") from None
            if not 0 <= i < len(self.params):
                raise ValueError(f"optimizer state names parameter {i}, but the optimizer has "
                                 f"{len(self.params)}")
            if not isinstance(entry, dict) or set(entry) not in (set(), set(self.state_keys)):
                keys = sorted(entry) if isinstance(entry, dict) else entry
                raise ValueError(f"{name}.load_state_dict: the state of parameter {i} holds {keys}, "
                                 f"{name} keeps {sorted(self.state_keys)}; is it another "
                                 "optimizer's state?")
            p = self.params[i].data
            xp = get_array_module(p)
            state[i] = {}
            for key, value in entry.items():
                kind = getattr(getattr(value, "dtype", None), "kind", None) or np.asarray(value).dtype.kind
                if kind not in "biuf":
                    raise ValueError(f"{name}.load_state_dict: state {i}.{key} must hold numbers, "
                                     f"got {type(value).__name__} {value!r:.60}")
                if np.ndim(value) == 0:
                    state[i][key] = type(value)(value) if isinstance(value, (int, float)) else value.item()
                    continue
                if tuple(np.shape(value)) != p.shape:
                    raise ValueError(f"optimizer state {i}.{key} has shape {tuple(np.shape(value))}, "
                                     f"parameter {i} has {p.shape}")
                state[i][key] = xp.array(value, dtype=p.dtype)
        self.state = state


class SGD(Optimizer):
    """``buf = momentum*buf + (1-dampening)*g``; ``p -= lr * (g + momentum*buf if nesterov else buf)``."""

    state_keys = frozenset({"momentum_buffer"})

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        _non_negative(lr, "learning rate")
        _non_negative(momentum, "momentum value")
        _non_negative(dampening, "dampening value")
        _non_negative(weight_decay, "weight_decay value")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, i, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction; ``weight_decay`` adds L2 to the gradient."""

    decoupled = False
    state_keys = frozenset({"step", "exp_avg", "exp_avg_sq"})

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        _non_negative(lr, "learning rate")
        _non_negative(eps, "epsilon value")
        _non_negative(weight_decay, "weight_decay value")
        _require(isinstance(betas, (tuple, list)) and len(betas) == 2, "betas (expected two values)",
                 betas)
        for i, b in enumerate(betas):
            _require(0.0 <= b < 1.0, f"beta parameter at index {i}", b)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _update(self, i, p, g, state):
        xp = get_array_module(p)
        b1, b2 = self.betas
        if self.weight_decay:
            if self.decoupled:
                p *= 1 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p)
            state["exp_avg_sq"] = xp.zeros_like(p)
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        step_size = self.lr / (1 - b1 ** t)
        bias2_sqrt = math.sqrt(1 - b2 ** t)
        if p.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous:
            kernels_for("adam", p).adam_update(p, xp.ascontiguousarray(g, dtype=p.dtype), m, v,
                                               b1, b2, step_size, bias2_sqrt, self.eps)
            return
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        denom = xp.sqrt(v) / bias2_sqrt + self.eps
        p -= (step_size * m / denom).astype(p.dtype, copy=False)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): ``p *= 1 - lr*wd`` first."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)
