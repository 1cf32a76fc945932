"""Version counters and in-place ops, PyTorch's guard against gradients at the wrong point.

Every Tensor carries a :class:`VersionCounter`, shared with the tensors that
view its memory (``detach()``, and the result of any op that returns a view of
an input: reshape, slicing, permute). An in-place op (``zero_``, ``copy_``, an
optimizer step, ``load_state_dict``) bumps it. When an op records itself on
the tape, the arrays it saved for backward are matched to its input and output
tensors by memory and their versions recorded; backward compares them and
raises instead of differentiating at values that were overwritten.

In-place ops follow PyTorch's rules: on a leaf that requires grad they raise
(outside ``no_grad()``, where optimizers and initializers write); on a tensor
that is part of a graph they are recorded, so gradients flow through them.
"""
import numpy as np

from . import autograd
from .autograd import Function, Node, unbroadcast

MODIFIED = "one of the variables needed for gradient computation has been modified by an inplace operation"
LEAF = "a leaf Variable that requires grad is being used in an in-place operation."
VIEW_OF_LEAF = "a view of a leaf Variable that requires grad is being used in an in-place operation."
VIEW_OF_GRAPH = ("{op}(): an in-place write into a view of a tensor is not supported when a gradient "
                 "is recorded ({why}): the write would change the base's values but not its "
                 "gradient (PyTorch rebases the base's graph; tinynorm does not). Write into the "
                 "base itself, or build the new value out of place (e.g. cat or a mask)")


class VersionCounter:
    __slots__ = ("value",)

    def __init__(self):
        self.value = 0


def _owner(array):
    base = getattr(array, "base", None)
    return id(array if base is None else base)


def share_view_counter(result, tensors):
    """Give ``result`` the counter of the input whose memory its array views; return its position
    (None when ``result`` views no input)."""
    if getattr(result.data, "base", None) is None:
        return None
    owner = _owner(result.data)
    for i, t in enumerate(tensors):
        if t is not None and _owner(t.data) == owner and not isinstance(t.data, np.generic):
            result._version_counter = t._version_counter
            return i
    return None


def snapshot(fn, tensors, result, viewed=None):
    """(counter, version, role, shape, dtype) of every saved array that lives in an input or the
    output, and of the input that the result views: a view's gradient is that of its base's
    values when it was taken, so a later in-place write into the base (through another view or
    itself) makes its backward raise instead of sending a stale gradient. ``role`` is the
    input's position, -1 for the output."""
    if viewed is not None:
        t = tensors[viewed]
        seen = ((t._version_counter, t._version_counter.value, viewed, t.data.shape, t.data.dtype),)
        return seen + snapshot(fn, tensors, result) if fn.saved else seen
    if not fn.saved:
        return ()
    owners = [(_owner(t.data), t, i) for i, t in enumerate(tensors) if t is not None]
    owners.append((_owner(result.data), result, -1))
    out = []
    for a in fn.saved:
        if not hasattr(a, "shape"):
            continue
        key = _owner(a)
        for owner, t, role in owners:
            if owner == key:
                c = t._version_counter
                out.append((c, c.value, role, t.data.shape, t.data.dtype))
                break
    return tuple(out)


def check(node):
    """Raise RuntimeError when a tensor saved by ``node`` changed since its forward."""
    for counter, version, role, shape, dtype in node.saved_versions:
        if counter.value != version:
            raise RuntimeError(
                f"{MODIFIED}: [{dtype} {list(shape)}], which is "
                f"{'output 0' if role < 0 else f'input {role}'} of "
                f"{type(node.fn).__name__}, is at version {counter.value}; expected version "
                f"{version} instead. Hint: compute it out of place (e.g. x * 0 instead of "
                "x.zero_()) or clone() it before the in-place change")


class CopyInto(Function):
    """The tape entry of ``dst.copy_(src)`` (``zero_`` copies a constant): d dst_old = 0, d src = g."""

    def backward(self, g):
        return None, unbroadcast(g, self.src_shape)

    def backward_graph(self, g, inputs):
        from .graph import sum_to
        return None, sum_to(g, self.src_shape)


def _view_base(tensor):
    """The tensor that ``tensor`` views through a chain of recorded view ops (reshape, slicing,
    permute: each shares its input's version counter), or None when it views nothing."""
    t = tensor
    while t._node is not None and not isinstance(t._node.fn, CopyInto):    # CopyInto: its own past
        base = [i for i in t._node.inputs
                if i is not None and i._version_counter is t._version_counter]
        if not base:
            break
        t = base[0]
    return None if t is tensor else t


def inplace(tensor, src, write, op="copy_"):
    """Run ``write()`` (which overwrites ``tensor.data`` with ``src``) as PyTorch's in-place copy.

    A write into a view is refused while a gradient is recorded through it, the view or the
    source: the tape entry would sit on the view only, so the base (``y`` of ``y[0].copy_(s)``)
    would still send its whole gradient to its inputs and none to ``s``.
    """
    from .tensor import Tensor
    recording = autograd.is_grad_enabled()
    src_grad = isinstance(src, Tensor) and src.requires_grad
    if recording and tensor.requires_grad and tensor._node is None:
        raise RuntimeError(LEAF)
    if recording and (tensor.requires_grad or src_grad):
        base = _view_base(tensor)
        if base is not None and base.requires_grad and base._node is None:
            raise RuntimeError(VIEW_OF_LEAF)
        if base is not None:
            raise RuntimeError(VIEW_OF_GRAPH.format(op=op, why="the view is part of a graph"))
        if src_grad and tensor._node is None and getattr(tensor.data, "base", None) is not None:
            raise RuntimeError(VIEW_OF_GRAPH.format(op=op, why="the source requires grad"))
    write()
    tensor._version_counter.value += 1
    if not recording or not (tensor.requires_grad or src_grad):
        return tensor
    src = src if isinstance(src, Tensor) else Tensor(np.asarray(0.0))
    old = Tensor(tensor.data)
    old.requires_grad, old._node, old._version_counter = (
        tensor.requires_grad, tensor._node, tensor._version_counter)
    fn = CopyInto()
    fn.src_shape = src.shape
    fn.needs_input_grad = (False, src.requires_grad)
    tensor._node = Node(fn, (old, src))
    tensor.requires_grad = True
    return tensor


def bump(tensors):
    """Mark ``tensors`` as changed in place (an optimizer step, ``load_state_dict``)."""
    for t in tensors:
        t._version_counter.value += 1
