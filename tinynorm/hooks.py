"""Hooks as PyTorch has them: on tensors' gradients and on modules' forward and backward.

* ``Tensor.register_hook(fn)``: ``fn(grad)`` runs when the gradient of the
  tensor is complete (summed over every use) and may return a replacement. On a
  leaf the replacement is what reaches ``.grad``.
* ``Tensor.retain_grad()``: a non-leaf keeps its gradient in ``.grad``
  (accumulated across backward calls, set after its hooks ran).
* ``Module.register_forward_pre_hook(fn)``: ``fn(module, args)``, may return new
  args; ``register_forward_hook(fn)``: ``fn(module, args, output)``, may return a
  new output; ``register_full_backward_hook(fn)``:
  ``fn(module, grad_input, grad_output)``, may return a new ``grad_input``.

The module backward hook works as PyTorch's: the module's tensor inputs and
outputs pass through identity nodes (``BackwardHookFunctionBackward``); the
output nodes collect ``grad_output``, the input nodes ``grad_input``; when the
last input node has its gradient the hook runs, and its result is what flows
on. If no input requires grad, the hook runs once ``grad_output`` is known,
with ``grad_input`` all None. Every ``register_*`` returns a
:class:`RemovableHandle`.
"""
import itertools

from .autograd import Function
from .backend import is_device_array

_ids = itertools.count()
_state = {"armed": False}


def armed():
    """True once any leaf gradient hook or module backward hook was registered."""
    return _state["armed"]


class RemovableHandle:
    """``handle.remove()`` unregisters the hook (also usable as a context manager)."""

    def __init__(self, hooks):
        self.hooks_dict = hooks
        self.id = next(_ids)

    def remove(self):
        self.hooks_dict.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


def _add(hooks, fn):
    if not callable(fn):
        raise TypeError(f"hook must be callable, got {type(fn).__name__}")
    handle = RemovableHandle(hooks)
    hooks[handle.id] = fn
    return handle


# ---- tensors --------------------------------------------------------------

def register_tensor_hook(tensor, fn):
    if not tensor.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    node = tensor._node
    if node is None:
        _state["armed"] = True
        return _add(tensor.__dict__.setdefault("_hooks", {}), fn)
    if node.hooks is None:
        node.hooks = {}
    return _add(node.hooks, fn)


def retain_grad(tensor):
    import weakref
    if not tensor.requires_grad:
        raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    if tensor._node is not None:
        tensor._node.retained = weakref.ref(tensor)


def retains_grad(tensor):
    node = tensor._node
    return node is not None and node.retained is not None and node.retained() is tensor


def _run(hooks, g):
    from .tensor import Tensor
    xp_array = type(g)
    for fn in list(hooks.values()):
        out = fn(Tensor(g))
        if out is None:
            continue
        new = out.data if isinstance(out, Tensor) else out
        if not hasattr(new, "shape") or not isinstance(new, xp_array) and not is_device_array(new):
            raise TypeError(f"hook {getattr(fn, '__name__', fn)!r} returned "
                            f"{type(out).__name__}; expected a Tensor or None")
        if new.shape != g.shape:
            raise RuntimeError(f"hook {getattr(fn, '__name__', fn)!r} has changed the size of "
                               f"value: expected {tuple(g.shape)}, got {tuple(new.shape)}")
        g = new.astype(g.dtype, copy=False)
    return g


def run_node_hooks(node, g):
    """The gradient of the tensor ``node`` made, through its hooks, then into ``.grad`` if retained."""
    from .tensor import Tensor
    if node.hooks:
        g = _run(node.hooks, g)
    if node.retained is not None:
        t = node.retained()
        if t is not None:
            if t.grad is None:
                t.grad = Tensor(g.copy())
            else:
                t.grad = Tensor(t.grad.data + g)
    return g


def run_leaf_hooks(tensor, g):
    hooks = tensor.__dict__.get("_hooks")
    return _run(hooks, g) if hooks else g


# ---- the engine's plan for one backward call --------------------------------

class Plan:
    """What one backward walk must hold back: hooked leaves until all their uses, and hook groups."""

    def __init__(self, order):
        self.pending = {}
        self.leaves = {}
        self.buffers = {}
        self.members = {}
        counts = {}
        for node in order:
            if type(node.fn) is BackwardHookFunction:
                self.members[id(node)] = node.fn.group
                counts[id(node.fn.group)] = counts.get(id(node.fn.group), 0) + 1
            for t, parent, need in zip(node.inputs, node.parents, node.fn.needs_input_grad):
                if parent is None and need and t.__dict__.get("_hooks"):
                    self.pending[id(t)] = self.pending.get(id(t), 0) + 1
                    self.leaves[id(t)] = t
        self.remaining = counts
        self.stash = {}

    def holds(self, t):
        return id(t) in self.leaves

    def add_leaf(self, t, g):
        prev = self.buffers.get(id(t))
        self.buffers[id(t)] = g if prev is None else prev + g

    def after(self, node):
        for t, parent, need in zip(node.inputs, node.parents, node.fn.needs_input_grad):
            if parent is None and need and id(t) in self.pending:
                self.pending[id(t)] -= 1
                if self.pending[id(t)] == 0:
                    self._release(t)

    def _release(self, t):
        from .autograd import _accumulate_leaf
        g = self.buffers.pop(id(t), None)
        if g is not None:
            _accumulate_leaf(t, run_leaf_hooks(t, g))

    def flush(self):
        for key in list(self.buffers):
            self._release(self.leaves[key])

    def is_member(self, node):
        return id(node) in self.members

    def member(self, node, g, send, retain_graph):
        """Hold the gradient of one identity node; when its group is complete, run the hook and send."""
        group = node.fn.group
        gid = id(group)
        self.stash.setdefault(gid, []).append((node, g))
        self.remaining[gid] -= 1
        if self.remaining[gid]:
            return
        held = self.stash.pop(gid)
        grads = {n.fn.position: gi for n, gi in held}
        grads = group.fire(grads)
        for n, _ in held:
            gi = grads.get(n.fn.position)
            if gi is not None and n.fn.needs_input_grad[0]:
                send(n.inputs[0], n.parents[0], gi, n)
            if not retain_graph:
                n.freed = True
            self.after(n)


# ---- modules --------------------------------------------------------------

class BackwardHookFunction(Function):
    """Identity on one tensor; its node carries the gradient to a module's backward hook."""

    group = None
    position = 0

    def forward(self, x):
        return x.view()

    def backward(self, g):
        return g


class _Inputs:
    def __init__(self, state, n):
        self.state, self.n = state, n

    def fire(self, grads):
        return self.state.inputs_ready(grads)


class _Outputs:
    def __init__(self, state):
        self.state = state

    def fire(self, grads):
        self.state.outputs_ready(grads)
        return grads


class _BackwardState:
    """One forward call of a module with full backward hooks: grad_output, then grad_input."""

    def __init__(self, module, hooks, n_args, wants_input):
        self.module, self.hooks, self.n_args, self.wants_input = module, hooks, n_args, wants_input
        self.n_outputs = 0
        self.grad_output = None

    def outputs_ready(self, grads):
        from .tensor import Tensor
        self.grad_output = tuple(Tensor(grads[i]) if grads.get(i) is not None else None
                                 for i in range(self.n_outputs))
        if not self.wants_input:
            self._call((None,) * max(self.n_args, 1))

    def inputs_ready(self, grads):
        from .tensor import Tensor
        grad_input = tuple(Tensor(grads[i]) if grads.get(i) is not None else None
                           for i in range(self.n_args))
        new = self._call(grad_input)
        if new is None:
            return grads
        return {i: (g.data if isinstance(g, Tensor) else g) for i, g in enumerate(new)
                if g is not None}

    def _call(self, grad_input):
        grad_output = self.grad_output or (None,) * max(self.n_outputs, 1)
        for fn in list(self.hooks.values()):
            out = fn(self.module, grad_input, grad_output)
            if out is None:
                continue
            out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            if len(out) != len(grad_input):
                raise RuntimeError(f"backward hook returned {len(out)} gradients for a module with "
                                   f"{len(grad_input)} inputs")
            grad_input = out
        return None if grad_input is None else grad_input


def _wrap(tensor, group, position):
    out = BackwardHookFunction.apply(tensor)
    if out._node is not None:
        out._node.fn.group, out._node.fn.position = group, position
    return out


def call_module(module, hooks, args, kwargs):
    """``module(*args, **kwargs)`` with its pre-hooks, forward hooks and full backward hooks."""
    from .autograd import is_grad_enabled
    from .tensor import Tensor
    for fn in list(hooks["forward_pre"].values()):
        out = fn(module, args)
        if out is not None:
            args = out if isinstance(out, tuple) else (out,)
    backward = hooks["backward"]
    state = None
    if backward and is_grad_enabled():
        wants = any(isinstance(a, Tensor) and a.requires_grad for a in args)
        state = _BackwardState(module, backward, len(args), wants)
        group = _Inputs(state, len(args))
        args = tuple(_wrap(a, group, i) if isinstance(a, Tensor) and a.requires_grad else a
                     for i, a in enumerate(args))
    output = module.forward(*args, **kwargs)
    for fn in list(hooks["forward"].values()):
        out = fn(module, args, output)
        if out is not None:
            output = out
    if state is not None:
        group = _Outputs(state)
        if isinstance(output, Tensor):
            state.n_outputs = 1
            output = _wrap(output, group, 0) if output.requires_grad else output
        elif isinstance(output, tuple):
            state.n_outputs = len(output)
            output = tuple(_wrap(o, group, i) if isinstance(o, Tensor) and o.requires_grad else o
                           for i, o in enumerate(output))
        _state["armed"] = True
    return output


def module_hooks(module):
    d = module.__dict__.get("_hook_dicts")
    if d is None:
        d = {"forward_pre": {}, "forward": {}, "backward": {}}
        object.__setattr__(module, "_hook_dicts", d)
    return d


def register_module_hook(module, kind, fn):
    if kind == "backward":
        _state["armed"] = True
    return _add(module_hooks(module)[kind], fn)
