"""``ModuleList`` and ``ModuleDict``: hold submodules so that their parameters are registered."""
import operator
from collections import OrderedDict

from .module import Module


def _index(i, n, kind, accepted="integers or slices"):
    """``i`` as the key of item ``i`` of a container of ``n`` modules (negative from the end)."""
    try:
        i = operator.index(i)
    except TypeError:
        raise TypeError(f"{kind} indices must be {accepted}, not {type(i).__name__}") from None
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of range for a {kind} of {n}")
    return str(i % n)


def _module(m, where):
    if not isinstance(m, Module):
        raise TypeError(f"{where} is a {type(m).__name__}, not a Module")
    return m


class ModuleList(Module):
    """A list of modules (``torch.nn.ModuleList``); it has no ``forward`` of its own."""

    def __init__(self, modules=None):
        super().__init__()
        for m in modules or ():
            self.append(m)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ModuleList(list(self._modules.values())[i])
        return self._modules[_index(i, len(self), "ModuleList")]

    def __setitem__(self, i, m):
        key = _index(i, len(self), "ModuleList", "integers")
        self._modules[key] = _module(m, f"ModuleList item {i}")

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, m):
        self.add_module(str(len(self)), _module(m, f"ModuleList item {len(self)}"))
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self


class ModuleDict(Module):
    """An ordered dict of modules (``torch.nn.ModuleDict``)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, m):
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict keys must be strings, got {type(key).__name__}")
        self.add_module(key, _module(m, f"ModuleDict[{key!r}]"))

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules):
        items = modules.items() if isinstance(modules, (dict, OrderedDict, ModuleDict)) else modules
        for key, m in items:
            self[key] = m
