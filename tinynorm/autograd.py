"""The tape: grad mode, ``Function`` and the reverse walk.

Every differentiable op run while grad mode is on records one :class:`Node`
(the Function instance, its input tensors and the nodes that made them, taken at
record time so that a later in-place op cannot rewire the past) and stamps it with the next
position on the tape, so the nodes form a Wengert list ordered by
``Node.index``. ``backward`` gathers the nodes that lead to the loss, walks
them in reverse tape order, calls each Function's ``backward`` and
accumulates (``+=``) into ``.grad`` of the leaves, as micrograd's engine does.
Saved arrays are freed after use unless ``retain_graph=True``.
``backward(create_graph=True)`` and ``grad`` walk the same tape with Tensor
gradients instead (:mod:`tinynorm.graph`); this first-order sweep is unchanged.
"""
import contextlib
import itertools

import numpy as np

from .backend import get_array_module, is_device_array

_state = {"grad_enabled": True}
_tape_position = itertools.count()
_profiler = None


def is_grad_enabled():
    return _state["grad_enabled"]


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        self.prev = _state["grad_enabled"]
        _state["grad_enabled"] = self.enabled

    def __exit__(self, *exc):
        _state["grad_enabled"] = self.prev
        return False


def no_grad():
    """Context manager (and decorator) that stops recording on the tape."""
    return _GradMode(False)


def enable_grad():
    return _GradMode(True)


class Node:
    """One entry of the tape: the Function that ran and the tensors it read.

    It is also ``Tensor.grad_fn``: :meth:`name` and :attr:`next_functions`
    are PyTorch's (see :mod:`tinynorm.tape`).
    """

    __slots__ = ("fn", "inputs", "parents", "index", "freed", "saved_versions", "hooks",
                 "retained")

    def __init__(self, fn, inputs):
        self.fn = fn
        self.inputs = inputs
        self.parents = tuple([None if t is None else t._node for t in inputs])
        self.index = next(_tape_position)
        self.freed = False
        self.saved_versions = ()
        self.hooks = None
        self.retained = None

    def name(self):
        from .tape import node_name
        return node_name(self)

    @property
    def next_functions(self):
        from .tape import next_functions
        return next_functions(self)

    def __repr__(self):
        return f"<{self.name()} #{self.index}>"


def _check_one_device(cls, tensors):
    """Raise RuntimeError when an op mixes host arrays and GPU arrays (scalars go anywhere)."""
    on_gpu = [is_device_array(t.data) for t in tensors
              if not isinstance(t.data, np.generic)]
    if any(on_gpu) and not all(on_gpu):
        raise RuntimeError(f"{cls.__name__}: expected all tensors to be on the same device, "
                           "but found at least two devices, cuda and cpu; move them with .to()")


class Function:
    """An op with its forward and backward declared together.

    Subclasses implement ``forward(self, *arrays, **params)`` returning one
    array, and ``backward(self, grad)`` returning one gradient (or ``None``)
    per positional input. An input may be ``None`` (an absent optional weight
    or bias): ``forward`` then receives ``None`` in its place, its
    ``needs_input_grad`` entry is False and its gradient is ignored, and
    ``Node.inputs``/``next_functions`` hold ``None`` there, as in PyTorch.
    Arrays needed by backward are stored on ``self``
    through :meth:`save_for_backward`; ``self.needs_input_grad`` tells which
    inputs want a gradient.

    For a second order, a Function may also define
    ``backward_graph(self, grad, inputs)``: the same gradients, built with tape
    ops from the Tensor ``grad`` and the input Tensors, so that they can be
    differentiated again (used under ``create_graph=True``, see
    :mod:`tinynorm.graph`; returning ``NotImplemented`` means "no second
    order here"). Without it, ``backward`` runs and a second order through
    its result raises, naming the op. During that call ``self.output`` is the
    Tensor the op made (or None), so that a gradient written with the output
    (tanh, sigmoid, exp, softmax) goes through it, and its hooks, as in PyTorch.
    """

    needs_input_grad = ()
    saved = ()
    output = None

    def save_for_backward(self, *arrays):
        self.saved = arrays

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params):
        tensors = inputs
        for t in inputs:
            if t is not None and not isinstance(t, _Tensor):
                tensors = tuple(t if t is None or isinstance(t, _Tensor) else _as_tensor(t)
                                for t in inputs)
                break
        arrays = [None if t is None else t.data for t in tensors]
        wants = [t is not None and t._requires_grad for t in tensors]
        for a in arrays:
            if a is not None and type(a) is not np.ndarray:
                _check_one_device(cls, [t for t in tensors if t is not None])
                break
        fn = cls()
        record = _state["grad_enabled"] and True in wants
        fn.needs_input_grad = tuple(wants) if record else (False,) * len(tensors)
        if _profiler is None:
            out = fn.forward(*arrays, **params)
        else:
            out = _profiler.forward(fn, arrays, params)
        result = _Tensor._from_op(out, record)
        viewed = None if getattr(result.data, "base", None) is None else \
            versions.share_view_counter(result, tensors)
        if record:
            node = result._node = Node(fn, tensors)
            if viewed is not None or fn.saved:
                node.saved_versions = versions.snapshot(fn, tensors, result, viewed)
        return result


_Tensor = _as_tensor = None   # tinynorm.tensor binds them once it is defined (it imports this module)


def _bind_tensor(tensor_cls, as_tensor):
    global _Tensor, _as_tensor
    _Tensor, _as_tensor = tensor_cls, as_tensor


def _collect(root_node):
    seen = {}
    stack = [root_node]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        for parent in node.parents:
            if parent is not None:
                stack.append(parent)
    return sorted(seen.values(), key=lambda n: n.index, reverse=True)


def _owner(array):
    base = getattr(array, "base", None)
    return id(array if base is None else base)


def _accumulate_leaf(tensor, grad, adoptable=False):
    """``tensor.grad += grad``; a first gradient is adopted without a copy when nothing else shares its memory."""
    if grad.dtype != tensor.data.dtype:
        grad, adoptable = grad.astype(tensor.data.dtype), True
    if tensor._grad is None:
        own = adoptable and getattr(grad.flags, "writeable", True) and grad.flags.c_contiguous
        g = _Tensor._from_op(grad if own else grad.copy(), False)
        if type(grad) is type(tensor.data) and g.data.shape == tensor.data.shape:
            tensor._grad = g
        else:
            tensor.grad = g
    else:
        tensor.grad.data += grad


def backward(root, grad=None, retain_graph=None, create_graph=False):
    """Reverse-mode sweep from ``root`` over the tape.

    ``create_graph=True`` runs the sweep of :mod:`tinynorm.graph` instead, so
    that the gradients are Tensors on the tape; ``retain_graph`` defaults to
    ``create_graph``, as in PyTorch.
    """
    if create_graph:
        return graph.backward(root, grad, True if retain_graph is None else retain_graph, True)
    if not root.requires_grad:
        raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    xp = get_array_module(root.data)
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs; got shape {root.shape}")
        grad = xp.ones_like(root.data)
    else:
        from .tensor import Tensor
        raw = grad.data if isinstance(grad, Tensor) else grad
        kind = getattr(getattr(raw, "dtype", None), "kind", None)
        if kind is None:
            try:
                kind = np.asarray(raw).dtype.kind
            except (TypeError, ValueError):
                pass
        if kind is None or kind not in "biuf":
            raise TypeError(f"backward: gradient must be a Tensor or an array of real numbers, got "
                            f"{type(grad).__name__}")
        grad = xp.asarray(raw, dtype=root.data.dtype)
        if grad.shape != root.shape:
            raise ValueError(f"grad shape {grad.shape} does not match tensor shape {root.shape}")
    if root._node is None:
        if "_hooks" in root.__dict__:
            grad = hooks.run_leaf_hooks(root, grad)
        _accumulate_leaf(root, grad)
        return
    order = _collect(root._node)
    plan = hooks.Plan(order) if hooks.armed() else None
    grads = {id(root._node): grad}
    # The root gradient counts as handed out twice, the caller's reference and the sweep's: it may be
    # the caller's own array (xp.asarray does not copy one of the root's dtype), so no leaf adopts it.
    handed = {_owner(grad): 2}

    def send(t, parent, gi, node):
        if gi.shape != t.shape:
            raise RuntimeError(
                f"{type(node.fn).__name__}.backward returned a gradient of shape "
                f"{gi.shape} for an input of shape {t.shape}")
        owner = _owner(gi)
        handed[owner] = handed.get(owner, 0) + 1
        if parent is None:
            if plan is not None and plan.holds(t):
                plan.add_leaf(t, gi)
            else:
                _accumulate_leaf(t, gi, adoptable=handed[owner] == 1)
        else:
            key = id(parent)
            prev = grads.get(key)
            grads[key] = gi if prev is None else prev + gi

    for node in order:
        g = grads.pop(id(node), None)
        if g is not None and (node.hooks is not None or node.retained is not None):
            g = hooks.run_node_hooks(node, g)
        if plan is not None and plan.is_member(node):
            plan.member(node, g, send, retain_graph)
            continue
        if g is None:
            if plan is not None:
                plan.after(node)
            continue
        if node.freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time; "
                "pass retain_graph=True to the first backward call")
        if node.saved_versions:
            versions.check(node)
        fn = node.fn
        if _profiler is None:
            input_grads = fn.backward(g)
        else:
            input_grads = _profiler.backward(node, g)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if not retain_graph:
            fn.saved = ()
            node.freed = True
        for t, parent, gi, need in zip(node.inputs, node.parents, input_grads,
                                       fn.needs_input_grad):
            if gi is None or not need:
                continue
            if parent is None or gi.shape != t.data.shape:
                send(t, parent, gi, node)
                continue
            base = getattr(gi, "base", None)
            owner = id(gi if base is None else base)
            handed[owner] = handed.get(owner, 0) + 1
            key = id(parent)
            prev = grads.get(key)
            grads[key] = gi if prev is None else prev + gi
        if plan is not None:
            plan.after(node)
    if plan is not None:
        plan.flush()


def format_tape(t):
    """One line per node leading to ``t`` in tape order, with the bytes saved for backward."""
    from .tape import format_tape as fmt
    return fmt(t)


def broadcast_axes(grad_shape, shape):
    """The axes that broadcasting ``shape`` to ``grad_shape`` added in front, and those of the
    rest that it stretched from 1: a gradient sums over the first, then (keeping them) the second."""
    extra = len(grad_shape) - len(shape)
    return tuple(range(extra)), tuple(i for i, s in enumerate(shape)
                                      if s == 1 and grad_shape[extra + i] != 1)


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    added, stretched = broadcast_axes(grad.shape, shape)
    if added:
        grad = grad.sum(axis=added)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


from . import graph, hooks, versions  # noqa: E402  (use Function and Node)
from .graph import grad  # noqa: E402

__all__ = ["Function", "Node", "backward", "grad", "no_grad", "enable_grad", "is_grad_enabled",
           "unbroadcast", "format_tape"]
