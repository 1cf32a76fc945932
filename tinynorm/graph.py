"""Second order: the backward sweep that returns Tensors, and ``autograd.grad``.

``loss.backward(create_graph=True)`` and ``autograd.grad(...)`` walk the same
tape as the first-order :func:`tinynorm.autograd.backward`, but the gradients
they pass along are Tensors. With ``create_graph=True`` each node's gradient
is built by its Function's ``backward_graph(g, inputs)``, out of tape ops (or
of Functions whose own backward is the analytic double backward, as the norms
do), so the result has a ``grad_fn`` and can be differentiated again. Without
a graph (``autograd.grad(..., create_graph=False)``), the raw-array
``backward`` runs as in the first-order sweep and its arrays are wrapped.

A Function without ``backward_graph`` still gives its first-order gradient
under ``create_graph=True``: the raw gradient enters the tape through a
:class:`NoSecondOrder` node, which raises, naming the op, if a second order is
ever asked of it.
"""
import numpy as np

from . import autograd, versions
from .autograd import Function, _collect, _GradMode, broadcast_axes

_UNUSED = ("One of the differentiated Tensors appears to not have been used in the graph. "
           "Set allow_unused=True if this is the desired behavior.")


class NoSecondOrder(Function):
    """The first-order gradient of an op that has no double backward; differentiating it raises."""

    def forward(self, g, *inputs, value, op):
        self.op = op
        return value

    def backward(self, grad):
        raise RuntimeError(
            f"{self.op} has no second-order gradient (double backward): its backward is not "
            "differentiable in tinynorm, so create_graph=True cannot go through it twice")


def sum_to(g, shape):
    """The tape op version of :func:`tinynorm.autograd.unbroadcast`."""
    shape = tuple(shape)
    if g.shape == shape:
        return g
    added, stretched = broadcast_axes(g.shape, shape)
    if added:
        g = g.sum(dim=added)
    if stretched:
        g = g.sum(dim=stretched, keepdim=True)
    return g.reshape(shape) if g.shape != shape else g


def pack(arrays, dtype):
    """One flat array holding ``arrays`` (None skipped), and their shapes (None kept).

    A Function with several outputs (a norm's dx, dgamma, dbeta) returns them
    packed; :func:`unpack` splits the packed Tensor back with slicing tape ops.
    """
    from .backend import get_array_module
    present = [a for a in arrays if a is not None]
    xp = get_array_module(*present)
    flat = xp.concatenate([xp.ravel(a).astype(dtype, copy=False) for a in present])
    return flat, [None if a is None else a.shape for a in arrays]


def _parts(shapes):
    """For each shape of :func:`pack`, the slice of the packed array that holds it and the shape
    (None for an absent part)."""
    offset = 0
    for shape in shapes:
        if shape is None:
            yield None
            continue
        n = int(np.prod(shape, dtype=np.int64))
        yield slice(offset, offset + n), shape
        offset += n


def unpack(packed, shapes):
    """Tensors cut from a packed Tensor (tape ops, so gradients flow back into it)."""
    return [None if part is None else packed[part[0]].reshape(tuple(part[1]))
            for part in _parts(shapes)]


def unpack_arrays(flat, shapes, dtype=np.float64):
    """The raw-array split of a packed gradient, as ``dtype``; absent parts come back as None."""
    return [None if part is None else flat[part[0]].reshape(part[1]).astype(dtype)
            for part in _parts(shapes)]


def _node_grads(node, g, create_graph, output=None):
    """The gradients (Tensors or None) of ``node``'s inputs given the Tensor ``g``; ``output`` is
    the Tensor ``node`` made, when the sweep has met it (``Function.output`` during the call)."""
    from .tape import node_name
    from .tensor import Tensor
    fn = node.fn
    if create_graph:
        if type(fn).__name__ == "BackwardHookFunction":
            raise RuntimeError("module full backward hooks do not run under create_graph=True or "
                               "autograd.grad; remove the hook for a second-order pass")
        graph_backward = getattr(fn, "backward_graph", None)
        if graph_backward is not None:
            fn.output = output
            try:
                grads = graph_backward(g, node.inputs)
            finally:
                fn.output = None
            if grads is not NotImplemented:
                return grads if isinstance(grads, tuple) else (grads,)
    raw = fn.backward(g.data)
    if not isinstance(raw, tuple):
        raw = (raw,)
    if not create_graph:
        return tuple(None if a is None else Tensor(a) for a in raw)
    name = node_name(node)
    if getattr(fn, "second_order_detail", None):
        name = f"{name} ({fn.second_order_detail})"
    return tuple(None if a is None else NoSecondOrder.apply(g, *node.inputs, value=a, op=name)
                 for a in raw)


def _run_hooks(hooks, g):
    for fn in list(hooks.values()):
        out = fn(g)
        if out is not None:
            if tuple(out.shape) != tuple(g.shape):
                raise RuntimeError(f"hook {getattr(fn, '__name__', fn)!r} has changed the size of "
                                   f"value: expected {tuple(g.shape)}, got {tuple(out.shape)}")
            g = out
    return g


def sweep(roots, root_grads, retain_graph, create_graph, targets=None):
    """Walk the tape from ``roots``; Tensors all the way.

    ``targets`` None: accumulate into ``.grad`` of the leaves (``backward``).
    Otherwise return a dict id(target) -> gradient Tensor for the targets
    only, leaving ``.grad`` alone (``autograd.grad``). A leaf's hooks run once,
    on its gradient summed over every use.
    """
    from .tensor import Tensor
    grads, found = {}, {}
    want_leaf = None if targets is None else {id(t) for t in targets if t._node is None}
    want_node = {} if targets is None else {id(t._node): t for t in targets if t._node is not None}

    def add(store, key, gi):
        prev = store.get(key)
        store[key] = gi if prev is None else prev + gi

    leaves = {}

    def to_leaf(t, gi):
        if targets is None or id(t) in want_leaf:
            prev = leaves.get(id(t))
            leaves[id(t)] = (t, gi if prev is None else prev[1] + gi)

    def finish_leaves():
        for key, (t, gi) in leaves.items():
            if "_hooks" in t.__dict__:
                gi = _run_hooks(t.__dict__["_hooks"], gi)
            if targets is not None:
                found[key] = gi
            elif not create_graph:
                autograd._accumulate_leaf(t, gi.data)
            else:
                t.grad = gi.clone() if t.grad is None else t.grad + gi   # torch clones too: no sharing

    made = {}
    nodes = [r._node for r in roots if r._node is not None]
    with _GradMode(create_graph):
        for r, g in zip(roots, root_grads):
            if r._node is None:
                to_leaf(r, g)
            else:
                add(grads, id(r._node), g)
                made.setdefault(id(r._node), r)
        order = _collect_many(nodes)
        through = None if targets is None else _leading_to(order, want_leaf, want_node)
        for node in order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node.hooks:
                g = _run_hooks(node.hooks, g)
            if node.retained is not None and node.retained() is not None:
                t = node.retained()
                t.grad = g if t.grad is None else t.grad + g
            if id(node) in want_node:
                add(found, id(want_node[id(node)]), g)
            if through is not None and id(node) not in through:
                continue
            if node.freed:
                raise RuntimeError("Trying to backward through the graph a second time; "
                                   "pass retain_graph=True to the first backward call")
            if node.saved_versions:
                versions.check(node)
            input_grads = _node_grads(node, g, create_graph, made.get(id(node)))
            if not retain_graph:
                node.fn.saved = ()
                node.freed = True
            for t, parent, gi, need in zip(node.inputs, node.parents, input_grads,
                                           node.fn.needs_input_grad):
                if parent is not None:
                    made.setdefault(id(parent), t)
                if gi is None or not need:
                    continue
                if not isinstance(gi, Tensor):
                    gi = Tensor(gi)
                if gi.shape != t.shape:
                    raise RuntimeError(f"{type(node.fn).__name__}.backward returned a gradient of "
                                       f"shape {gi.shape} for an input of shape {t.shape}")
                if parent is None:
                    to_leaf(t, gi)
                else:
                    add(grads, id(parent), gi)
        finish_leaves()
    return found


def _leading_to(order, want_leaf, want_node):
    """The ids of the nodes whose backward leads to a target (``autograd.grad`` runs no other)."""
    through, needed = set(), set()
    for node in reversed(order):
        if any(p is None and id(t) in want_leaf or p is not None and id(p) in needed
               for t, p in zip(node.inputs, node.parents)):
            through.add(id(node))
            needed.add(id(node))
        elif id(node) in want_node:
            needed.add(id(node))
    return through


def _collect_many(nodes):
    seen = {}
    for n in nodes:
        for m in _collect(n):
            seen[id(m)] = m
    return sorted(seen.values(), key=lambda n: n.index, reverse=True)


def _tensors(value, what):
    """``outputs`` or ``inputs`` of :func:`grad` as a list: one Tensor or a sequence of Tensors."""
    from .tensor import Tensor
    if isinstance(value, Tensor):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"autograd.grad: {what} must be a Tensor or a sequence of Tensors, got "
                        f"{type(value).__name__}")
    for i, t in enumerate(value):
        if not isinstance(t, Tensor):
            raise TypeError(f"autograd.grad: all {what} have to be Tensors, but got "
                            f"{type(t).__name__} at position {i}")
    if not value:
        raise RuntimeError(f"`{what}` argument to `grad()` cannot be empty.")
    return list(value)


def _grad_outputs(value):
    """``grad_outputs`` of :func:`grad` as PyTorch takes it: None, a Tensor or a sequence of
    them."""
    from .tensor import Tensor
    if value is None or isinstance(value, Tensor):
        return value
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"autograd.grad: grad_outputs must be a Tensor, None or a sequence of "
                        f"them, got {type(value).__name__}")
    for g in value:
        if g is not None and not isinstance(g, Tensor):
            raise TypeError(f"gradients can be either Tensors or None, but got "
                            f"{type(g).__name__}")
    return value


def _root_grads(outputs, grad_outputs):
    from .tensor import Tensor
    from .backend import get_array_module
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    else:
        grad_outputs = list(grad_outputs) if not isinstance(grad_outputs, Tensor) \
            else [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad_outputs has {len(grad_outputs)} entries, expected "
                         f"{len(outputs)} (one per output)")
    out = []
    for i, (o, g) in enumerate(zip(outputs, grad_outputs)):
        if not o.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have "
                               "a grad_fn")
        if g is None:
            if o.data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs; got "
                                   f"shape {o.shape}")
            g = Tensor(get_array_module(o.data).ones_like(o.data))
        elif not isinstance(g, Tensor):
            g = Tensor(get_array_module(o.data).asarray(g, dtype=o.dtype))
        if g.shape != o.shape:
            raise ValueError(f"grad shape {g.shape} does not match tensor shape {o.shape}")
        out.append(g)
    return out


def backward(root, grad, retain_graph, create_graph):
    """``root.backward(grad, create_graph=True)``: leaves' ``.grad`` become Tensors with a graph."""
    sweep([root], _root_grads([root], None if grad is None else [grad]), retain_graph,
          create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """The gradients of ``outputs`` with respect to ``inputs``, PyTorch's ``torch.autograd.grad``.

    Returns a tuple with one Tensor per input (None for an unused one when
    ``allow_unused``); ``.grad`` of leaves is left alone. ``grad_outputs`` are
    the vectors of the vector-Jacobian product (default: ones, for scalar
    outputs). ``create_graph=True`` makes the results differentiable (their
    ``grad_fn`` is set); ``retain_graph`` defaults to ``create_graph``.
    """
    outputs, inputs = _tensors(outputs, "outputs"), _tensors(inputs, "inputs")
    grad_outputs = _grad_outputs(grad_outputs)
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (input {i}, shape "
                               f"{tuple(t.shape)}) does not require grad")
    if retain_graph is None:
        retain_graph = create_graph
    found = sweep(outputs, _root_grads(outputs, grad_outputs), retain_graph, create_graph,
                  targets=inputs)
    result = []
    for i, t in enumerate(inputs):
        g = found.get(id(t))
        if g is None and not allow_unused:
            raise RuntimeError(f"{_UNUSED} (input {i}, shape {tuple(t.shape)})")
        result.append(g)
    return tuple(result)
