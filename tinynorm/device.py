"""``tinynorm.device`` and ``tinynorm.accelerator``: naming where tensors live, as PyTorch does.

A device is a string subclass, so ``device("cpu") == "cpu"`` and it passes
wherever a device string does (``Tensor.to``, ``Module.to``).
"""
import types

from . import gpu

_TYPES = ("cpu", "cuda")


class device(str):
    """``tinynorm.device('cpu')``, ``device('cuda')``, ``device('cuda:0')`` or ``device('cuda', 0)``."""

    def __new__(cls, type, index=None):
        if isinstance(type, device) and index is None:
            return type
        if not isinstance(type, str):
            raise TypeError(f"device() expects a string such as 'cpu' or 'cuda', got "
                            f"{type.__class__.__name__}")
        kind, _, number = type.partition(":")
        if kind not in _TYPES:
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: "
                               f"{type}")
        if number:
            if index is not None or not number.isdigit():
                raise RuntimeError(f"Invalid device string: {type!r}")
            index = int(number)
        if index is not None and index != 0:
            raise RuntimeError(f"tinynorm uses one device of each type; got {kind}:{index}")
        self = super().__new__(cls, kind if index is None else f"{kind}:{index}")
        self.type, self.index = kind, index
        return self

    def __repr__(self):
        extra = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{extra})"

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except (RuntimeError, TypeError):
                return False
            return (self.type, self.index or 0) == (other.type, other.index or 0)
        return NotImplemented

    __hash__ = str.__hash__


def _current_accelerator(check_available=False):
    """The GPU as a device when one is usable, else None (``torch.accelerator.current_accelerator``)."""
    return device("cuda") if gpu.is_available() else None


accelerator = types.SimpleNamespace(
    is_available=gpu.is_available,
    current_accelerator=_current_accelerator,
    device_count=lambda: int(gpu.is_available()),
)
accelerator.__doc__ = "``torch.accelerator``'s names: is_available, current_accelerator, device_count."
