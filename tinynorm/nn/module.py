"""``Module`` and ``Parameter``, with PyTorch's registration and state_dict rules."""
from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from .. import dtypes, hooks, versions
from ..backend import get_array_module, to_numpy
from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that a Module registers as trainable (``requires_grad=True``)."""

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


_IncompatibleKeys = namedtuple("_IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _typename(value):
    """``torch.typename``'s spelling: 'int', 'numpy.ndarray', 'tinynorm.Tensor'."""
    cls = type(value)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    if module.startswith("tinynorm."):
        module = "tinynorm"
    return f"{module}.{cls.__qualname__}"


class Module:
    """Base class: attributes that are Parameters, Modules or registered buffers are tracked."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        """PyTorch's rules: a Parameter, Module or registered buffer name keeps its kind; assigning
        another kind of value to it raises TypeError instead of silently unregistering it."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign before Module.__init__() call")
        if isinstance(value, Parameter):
            self._forget(name)
            self._parameters[name] = value
            return
        if name in self._parameters:
            if value is not None:
                raise TypeError(f"cannot assign '{_typename(value)}' as parameter '{name}' "
                                "(tinynorm.nn.Parameter or None expected)")
            self._parameters[name] = None
            return
        if isinstance(value, Module):
            self._forget(name)
            self._modules[name] = value
            return
        if name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign '{_typename(value)}' as child module '{name}' "
                                "(tinynorm.nn.Module or None expected)")
            self._modules[name] = None
            return
        if name in self.__dict__.get("_buffer_names", ()):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{_typename(value)}' as buffer '{name}' "
                                "(tinynorm.Tensor or None expected)")
            self._buffers[name] = value
            return
        object.__setattr__(self, name, value)

    def _forget(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        self.__dict__.pop(name, None)

    def _check_new_name(self, name, kind):
        """A name for :meth:`register_parameter`/``register_buffer``/``add_module``, checked as
        PyTorch checks it (KeyError for a bad or taken name, TypeError for a non-string)."""
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
        store = {"parameter": self._parameters, "buffer": self._buffers,
                 "module": self._modules}[kind]
        if name not in store and hasattr(self, name):
            raise KeyError(f"attribute '{name}' already exists")

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        self._check_new_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{_typename(param)}' object to parameter '{name}' "
                            "(tinynorm.nn.Parameter or None required)")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name, tensor):
        """Register state that is saved in ``state_dict`` but not trained (or ``None``)."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        self._check_new_name(name, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{_typename(tensor)}' object to buffer '{name}' "
                            "(tinynorm.Tensor or None required)")
        if "_buffer_names" not in self.__dict__:
            object.__setattr__(self, "_buffer_names", set())
        self._forget(name)
        self._buffer_names.add(name)
        self._buffers[name] = tensor

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{_typename(module)} is not a Module subclass")
        self._check_new_name(name, "module")
        self._modules[name] = module

    # ---- traversal ----------------------------------------------------------
    def named_modules(self, prefix="", remove_duplicate=True, memo=None):
        """Every module under ``self`` with its dotted name; a module registered under several
        names comes once, under the first, unless ``remove_duplicate`` is False (as torch)."""
        if remove_duplicate:
            memo = set() if memo is None else memo
            if self in memo:
                return
            memo.add(self)
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name,
                                           remove_duplicate, memo)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def children(self):
        return (m for _, m in self.named_children())

    def named_children(self):
        memo = set()
        for name, m in self._modules.items():
            if m is not None and m not in memo:
                memo.add(m)
                yield name, m

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule, children first, then on ``self``; returns ``self``."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def named_parameters(self, prefix=""):
        seen = set()
        for mprefix, m in self.named_modules(prefix):
            for name, p in m._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mprefix}.{name}" if mprefix else name), p

    def parameters(self):
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix=""):
        seen = set()
        for mprefix, m in self.named_modules(prefix):
            for name, b in m._buffers.items():
                if b is not None and id(b) not in seen:
                    seen.add(id(b))
                    yield (f"{mprefix}.{name}" if mprefix else name), b

    def buffers(self):
        for _, b in self.named_buffers():
            yield b

    # ---- modes and state ----------------------------------------------------
    def train(self, mode=True):
        if mode is not True and mode is not False and not isinstance(mode, np.bool_):
            raise ValueError(f"training mode is expected to be boolean, got {type(mode).__name__} "
                             f"{mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data[...] = 0

    def state_dict(self):
        """Parameters then buffers of every module, keyed like PyTorch (``layer.weight``)."""
        out = OrderedDict()
        for mprefix, m in self.named_modules(remove_duplicate=False):
            for store in (m._parameters, m._buffers):
                for name, t in store.items():
                    if t is not None:
                        out[f"{mprefix}.{name}" if mprefix else name] = t.data
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into parameters and buffers; shape mismatches and, if strict, missing or extra keys raise."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict expects a dict of arrays (a state_dict), got "
                            f"{type(state_dict).__name__}")
        own = OrderedDict()
        for mprefix, m in self.named_modules(remove_duplicate=False):
            for store in (m._parameters, m._buffers):
                for name, t in store.items():
                    if t is not None:
                        own[f"{mprefix}.{name}" if mprefix else name] = t
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):  # torch's error, raised before anything is copied
            errors = [f"{what} key(s) in state_dict: " + ", ".join(f'"{k}"' for k in keys) + ". "
                      for what, keys in (("Missing", missing), ("Unexpected", unexpected)) if keys]
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        for key, t in own.items():
            if key not in state_dict:
                continue
            value = to_numpy(state_dict[key])
            if value.dtype.hasobject or value.dtype.kind not in "biuf":
                raise ValueError(f"load_state_dict: {key} holds {value.dtype} values; expected "
                                 f"numbers like the model's {t.data.dtype}")
            if value.shape != t.data.shape:
                raise ValueError(
                    f"load_state_dict: {key} has shape {value.shape} in the file, "
                    f"{t.data.shape} in the model")
            t.data[...] = get_array_module(t.data).asarray(value)
            versions.bump((t,))
        return _IncompatibleKeys(missing, unexpected)

    def get_extra_state(self):
        """State outside parameters and buffers, as ``{name: array}`` (PyTorch's hook; empty here).

        Modules that keep such state (Cross-Iteration BN's window, CmBN's step) override
        this and :meth:`set_extra_state`, so that a training checkpoint can hold it.
        """
        return {}

    def set_extra_state(self, state):
        if state:
            raise ValueError(f"{type(self).__name__} keeps no extra state, got keys {sorted(state)}")

    def cuda(self):
        return self.to("cuda")

    def cpu(self):
        return self.to("cpu")

    def to(self, device=None, dtype=None):
        """``.to(device)``, ``.to(dtype)`` or ``.to(device, dtype)``: move every parameter and
        buffer, and cast the floating ones, in place; returns ``self``."""
        if device is not None and dtype is None and not isinstance(device, str):
            device, dtype = None, device
        if dtype is not None:
            dt = dtypes.parse(dtype, "Module.to")
            if dt.kind not in "fc":
                raise TypeError("nn.Module.to only accepts floating point or complex dtypes, but "
                                f"got desired dtype={dt}")
            dtype = dtypes.parameter(dt, "Module.to")
        for m in self.modules():
            for store in (m._parameters, m._buffers):
                for name, t in store.items():
                    if t is None:
                        continue
                    cast = dtype if (dtype is not None and t.dtype.kind == "f") else None
                    moved = t.to(device, cast)
                    if moved is not t:
                        t.data = moved.data
                        t.grad = None
        return self

    def double(self):
        return self.to(dtype=np.float64)

    def float(self):
        return self.to(dtype=np.float32)

    # ---- calling ------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def __call__(self, *args, **kwargs):
        registered = self.__dict__.get("_hook_dicts")
        if registered is None:
            return self.forward(*args, **kwargs)
        return hooks.call_module(self, registered, args, kwargs)

    def register_forward_pre_hook(self, hook):
        """``hook(module, args)`` before ``forward``; a returned value replaces ``args``."""
        return hooks.register_module_hook(self, "forward_pre", hook)

    def register_forward_hook(self, hook):
        """``hook(module, args, output)`` after ``forward``; a returned value replaces ``output``."""
        return hooks.register_module_hook(self, "forward", hook)

    def register_full_backward_hook(self, hook):
        """``hook(module, grad_input, grad_output)`` once the gradients of the inputs are known;
        a returned tuple replaces ``grad_input``."""
        return hooks.register_module_hook(self, "backward", hook)

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = []
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {sub}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


_AFFINE_FILL = (("weight", 1), ("bias", 0))


def register_affine(module, shape, dtype, weight=True, bias=True):
    """Register a norm's affine Parameters with PyTorch's names and starting values:
    ``weight`` of ones and ``bias`` of zeros, of ``shape``; a False flag registers None there."""
    for (name, fill), wanted in zip(_AFFINE_FILL, (weight, bias)):
        module.register_parameter(name, Parameter(np.full(shape, fill, dtype=dtype))
                                  if wanted else None)


def reset_affine(module):
    """Set the registered ``weight`` (ones) and ``bias`` (zeros) that are present back to their start."""
    for name, fill in _AFFINE_FILL:
        p = module._parameters.get(name)
        if p is not None:
            p.data[...] = fill


def check_channels(module, x, ranks):
    """Refuse ``x`` unless its rank is in ``ranks`` and axis 1 has ``module.num_features`` channels."""
    name = type(module).__name__
    if x.ndim not in ranks:
        expect = " or ".join(f"{r}D" for r in ranks)
        raise ValueError(f"{name} expected {expect} input, got {x.ndim}D input "
                         f"of shape {tuple(x.shape)}")
    if x.shape[1] != module.num_features:
        raise ValueError(f"{name}({module.num_features}) got input with "
                         f"{x.shape[1]} channels (shape {tuple(x.shape)})")
