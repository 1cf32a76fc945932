"""``Optimizer``: parameter groups, per-parameter state and state_dict, as ``torch.optim.Optimizer``."""
import math
from collections.abc import Mapping

import numpy as np

from .. import autograd, profiler, versions
from ..backend import get_array_module


def require(ok, what, value):
    """PyTorch's optimizer checks, written so that NaN fails them (every comparison with NaN is False)."""
    if not ok:
        raise ValueError(f"Invalid {what}: {value}")


def non_negative(value, what):
    require(isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
            and 0.0 <= value < math.inf, what, value)


def fraction(value, what, high_open=False):
    """A number in [0, 1] (or [0, 1) with ``high_open``)."""
    non_negative(value, what)
    require(value < 1.0 if high_open else value <= 1.0, what, value)


_ERROR_NAMES = {"lr": "learning rate", "eps": "epsilon value"}


class Optimizer:
    """Base class: ``param_groups`` (dicts holding ``params`` and their hyperparameters) and ``state``.

    ``params`` is an iterable of Tensors, or of dicts each with a ``params`` entry
    and hyperparameters that override the constructor's defaults for that group
    (per-layer learning rates, no weight decay on norms and biases). ``state`` is
    keyed by parameter, as in PyTorch; :meth:`state_dict` numbers the parameters
    in group order.
    """

    state_keys = frozenset()

    #: hyperparameter -> its check (:func:`non_negative` or :func:`fraction`), in PyTorch's order
    hyper_checks = {}

    def required_state(self, group):
        """The keys a parameter's non-empty state must hold under ``group``'s settings (all of
        ``state_keys`` unless an optimizer says otherwise): a partial state would fail at step()."""
        return self.state_keys

    def __init__(self, params, defaults):
        from ..tensor import Tensor
        self._check(defaults)
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors, but got a Tensor")
        if isinstance(params, (set, frozenset)):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but "
                            "the ordering of tensors in sets will change between runs; use a list")
        if isinstance(params, Mapping):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors or dicts, but got a dict; wrap a single group in a list")
        try:
            params = list(params)
        except TypeError:
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors (e.g. model.parameters()), but got {type(params).__name__}") from None
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}
        groups = params if isinstance(params[0], Mapping) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    @classmethod
    def _check(cls, group):
        """Raise ValueError for a bad hyperparameter in ``group``: each of ``hyper_checks`` in
        order, then what an optimizer adds by extending this method."""
        for key, check in cls.hyper_checks.items():
            check(group[key], _ERROR_NAMES.get(key, f"{key} value"))

    @property
    def params(self):
        """Every parameter, in group order (the numbering of :meth:`state_dict`)."""
        return [p for group in self.param_groups for p in group["params"]]

    def add_param_group(self, param_group):
        """Add a group: a dict with ``params`` and optional hyperparameters (the rest take the defaults)."""
        from ..tensor import Tensor
        if not isinstance(param_group, Mapping):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("a parameter group needs a 'params' entry")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but "
                            "the ordering of tensors in sets will change between runs; use a list")
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if p._node is not None:
                raise ValueError("can't optimize a non-leaf Tensor")
            if p.dtype.kind != "f":
                raise ValueError(f"optimizer can only optimize floating point Tensors (an update "
                                 f"would be truncated), got {p.dtype}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear more than once in the parameter list; each "
                             "would be updated once per appearance")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check(group)
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data[...] = 0

    @profiler.step
    def step(self, closure=None):
        """One update of every parameter that has a ``.grad``; ``closure`` re-evaluates the loss first."""
        loss = None
        if closure is not None:
            with autograd.enable_grad():
                loss = closure()
        params = self.params
        for i, p in enumerate(params):
            if p._grad is not None and p._grad.data.shape != p.data.shape:
                raise RuntimeError(f"optimizer: parameter {i} has shape {p.shape} but its .grad has "
                                   f"shape {p.grad.shape}")
        for group in self.param_groups:
            self._step_group(group)
        versions.bump(params)
        return loss

    def _step_group(self, group):
        """Update the parameters of ``group`` that have a ``.grad`` (one :meth:`_update` each)."""
        for p in group["params"]:
            if p.grad is not None:
                self._update(p.data, p.grad.data, self.state.setdefault(p, {}), group)

    @staticmethod
    def _l2_gradient(p, g, group):
        """The gradient SGD, Adagrad, RMSprop and Adadelta step along: negated for ``maximize``,
        plus ``weight_decay * p`` (L2), in PyTorch's order."""
        if group["maximize"]:
            g = -g
        wd = group["weight_decay"]
        return g + wd * p if wd else g

    def _update(self, p, g, state, group):
        raise NotImplementedError(f"{type(self).__name__} must implement _update")

    def state_dict(self):
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``, as PyTorch."""
        index = {id(p): i for i, p in enumerate(self.params)}
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if s}
        groups = [dict(g, params=[index[id(p)] for p in g["params"]]) for g in self.param_groups]
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore :meth:`state_dict`: per-parameter state (copied; shapes must match) and, when
        given, each group's hyperparameters (the groups must hold as many parameters as before);
        saved state follows the groups' ``params`` indices to the parameters in group order, as torch."""
        if not isinstance(state_dict, Mapping) or not isinstance(state_dict.get("state"), Mapping):
            raise ValueError("optimizer.load_state_dict expects the dict of state_dict(), with a "
                             "'state' entry")
        params = self.params
        name = type(self).__name__
        groups = state_dict.get("param_groups")
        if groups is not None:
            for saved in groups:
                keys = set(saved) - {"params"} if isinstance(saved, Mapping) else saved
                if not isinstance(keys, set) or not set(self.defaults) <= keys:
                    theirs = sorted(keys) if isinstance(keys, set) else keys
                    raise ValueError(
                        f"{name}.load_state_dict: the state comes from another optimizer: its "
                        f"hyperparameters are {theirs}, {name}'s are {sorted(self.defaults)}")
            if len(groups) != len(self.param_groups):
                raise ValueError(f"loaded state dict has {len(groups)} parameter groups, the "
                                 f"optimizer has {len(self.param_groups)}")
            for ours, saved in zip(self.param_groups, groups):
                ids = saved.get("params")
                if not isinstance(ids, (list, tuple)):
                    raise ValueError(f"{name}.load_state_dict: a group's 'params' must be a list "
                                     f"of parameter indices, got {type(ids).__name__} {ids!r:.60}")
                if len(ids) != len(ours["params"]):
                    raise ValueError("loaded state dict contains a parameter group that doesn't "
                                     "match the size of optimizer's group")
            ids = [i for saved in groups for i in saved["params"]]
            if not all(type(i) is int for i in ids) or sorted(ids) != list(range(len(params))):
                raise ValueError(f"{name}.load_state_dict: the groups' 'params' lists hold {ids}; "
                                 f"expected the indices 0 to {len(params) - 1}, each once")
            params = dict(zip(ids, params))
        merged = [dict(ours) if groups is None else
                  {**ours, **{k: (tuple(v) if k == "betas" and isinstance(v, (list, tuple)) else v)
                              for k, v in saved.items() if k != "params"}}
                  for ours, saved in zip(self.param_groups, groups or self.param_groups)]
        group_of = {}
        for group in merged:
            self._check(group)
            group_of.update((id(p), group) for p in group["params"])
        state = {}
        for i, entry in state_dict["state"].items():
            try:
                i = int(i)
            except (TypeError, ValueError):
                raise ValueError(f"{name}.load_state_dict: state key {i!r} is not a parameter "
                                 "index") from None
            if not 0 <= i < len(params):
                raise ValueError(f"optimizer state names parameter {i}, but the optimizer has "
                                 f"{len(params)}")
            if not isinstance(entry, Mapping) or not set(entry) <= self.state_keys:
                keys = sorted(entry) if isinstance(entry, Mapping) else entry
                raise ValueError(f"{name}.load_state_dict: the state of parameter {i} holds {keys}, "
                                 f"{name} keeps {sorted(self.state_keys)}; is it another "
                                 "optimizer's state?")
            p = params[i].data
            xp = get_array_module(p)
            own = {}
            for key, value in entry.items():
                if value is None:  # torch's SGD saves a momentum_buffer of None: no buffer yet
                    continue
                if key == "step":  # the one scalar state; torch keeps it as a 0-d tensor
                    number = value.item() if np.ndim(value) == 0 and hasattr(value, "item") else value
                    if isinstance(number, bool) or not isinstance(number, (int, float)) \
                            or not 0 <= number < math.inf:
                        raise ValueError(f"optimizer state {i}.{key} must be a finite number >= 0, "
                                         f"got {value!r}")
                    own[key] = number
                    continue
                kind = getattr(getattr(value, "dtype", None), "kind", None) or np.asarray(value).dtype.kind
                if kind not in "biuf":
                    raise ValueError(f"{name}.load_state_dict: state {i}.{key} must hold numbers, "
                                     f"got {type(value).__name__} {value!r:.60}")
                if tuple(np.shape(value)) != p.shape:
                    raise ValueError(f"optimizer state {i}.{key} has shape {tuple(np.shape(value))}, "
                                     f"parameter {i} has {p.shape}")
                own[key] = xp.array(value, dtype=p.dtype)
            missing = sorted(self.required_state(group_of[id(params[i])]) - set(own)) if own else []
            if missing:
                raise ValueError(f"{name}.load_state_dict: the state of parameter {i} lacks "
                                 f"{missing} (it holds {sorted(own)})")
            if own:
                state[params[i]] = own
        for ours, group in zip(self.param_groups, merged):
            ours.update(group)
        self.state = state

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])
