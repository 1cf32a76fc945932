"""Looking at the tape: node names, ``next_functions``, saved bytes and ``format_tape``.

Names follow PyTorch exactly, trailing digit included (``MulBackward0``,
``NativeBatchNormBackward0``, ``AccumulateGrad``), so that a graph printed here
reads like the same graph printed by PyTorch. Built-in ops PyTorch lacks get
``<ClassName>Backward0`` (``BatchRenormBackward0``); a user's own ``Function``
gets ``<ClassName>Backward``, as a ``torch.autograd.Function`` does.

The bytes saved for backward are counted from the arrays a Function holds:
those it passed to ``save_for_backward`` and the array attributes it set on
itself (BatchNorm's per-channel mean and invstd, MaxPool's argmax, Dropout's
mask), each counted once per node by its ``nbytes``.
"""
import weakref

import numpy as np

try:
    from numpy.lib.array_utils import byte_bounds as _byte_bounds
except ImportError:
    _byte_bounds = np.byte_bounds

_FIXED = {
    "Add": "AddBackward0", "Sub": "SubBackward0", "Mul": "MulBackward0", "Div": "DivBackward0",
    "Neg": "NegBackward0", "Pow": "PowBackward0", "Exp": "ExpBackward0", "Log": "LogBackward0",
    "Tanh": "TanhBackward0", "Sigmoid": "SigmoidBackward0", "ReLU": "ReluBackward0",
    "Maximum": "MaximumBackward0", "Reshape": "ViewBackward0", "Permute": "PermuteBackward0",
    "Concat": "CatBackward0", "Stack": "StackBackward0", "Conv2d": "ConvolutionBackward0",
    "MaxPool2d": "MaxPool2DWithIndicesBackward0", "AvgPool2d": "AvgPool2DBackward0",
    "AdaptiveAvgPool2d": "AdaptiveAvgPool2DBackward0", "LogSoftmax": "LogSoftmaxBackward0",
    "Dropout": "NativeDropoutBackward0", "BatchNorm": "NativeBatchNormBackward0",
    "WeightNorm": "WeightNormInterfaceBackward0", "CopyInto": "CopyBackwards",
    "BackwardHookFunction": "BackwardHookFunctionBackward", "Abs": "AbsBackward0",
    "Cast": "ToCopyBackward0",
}


def _reduction(node, base):
    fn = node.fn
    full = len(getattr(fn, "axes", ())) == len(getattr(fn, "shape", ())) and not fn.keepdim
    return f"{base}Backward{0 if full else 1}"


def _matmul(node):
    return "MmBackward0" if all(t.ndim == 2 for t in node.inputs) else "BmmBackward0"


def _getitem(node):
    index = node.fn.index
    items = index if isinstance(index, tuple) else (index,)
    if all(isinstance(i, (int, np.integer)) for i in items):
        return "SelectBackward0"
    if all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items):
        return "SliceBackward0"
    return "IndexBackward0"


def _group_norm(node):
    view = getattr(node.fn, "view", None)
    if view is not None and view[1] == 1 and view[3] == 1:
        return "NativeLayerNormBackward0"
    return "NativeGroupNormBackward0"


_BY_NODE = {"Sum": lambda n: _reduction(n, "Sum"), "Mean": lambda n: _reduction(n, "Mean"),
            "MatMul": _matmul, "GetItem": _getitem, "GroupNorm": _group_norm,
            "Linear": lambda n: "AddmmBackward0" if n.fn.has_bias else "MmBackward0",
            "Extremum": lambda n: f"{n.fn.op.capitalize()}Backward0",
            "ExtremumAll": lambda n: f"{n.fn.op.capitalize()}Backward1"}


def node_name(node):
    """PyTorch's name for the backward node of ``node.fn`` (see the module docstring)."""
    cls = type(node.fn)
    if not cls.__module__.startswith("tinynorm."):
        return f"{cls.__name__}Backward"
    special = _BY_NODE.get(cls.__name__)
    if special is not None:
        return special(node)
    return _FIXED.get(cls.__name__, f"{cls.__name__}Backward0")


class AccumulateGrad:
    """The node that adds a leaf's gradient into ``.grad``; ``variable`` is the leaf."""

    __slots__ = ("_variable", "__weakref__")

    def __init__(self, tensor):
        self._variable = weakref.ref(tensor)

    @property
    def variable(self):
        return self._variable()

    def name(self):
        return "AccumulateGrad"

    next_functions = ()

    def __repr__(self):
        return "<AccumulateGrad object>"


def accumulate_grad(tensor):
    """The one AccumulateGrad node of a leaf (made on first use, as PyTorch's)."""
    node = tensor.__dict__.get("_accumulate_grad")
    if node is None:
        node = tensor.__dict__["_accumulate_grad"] = AccumulateGrad(tensor)
    return node


def next_functions(node):
    """``((parent, 0), ...)``: the node that made each input, AccumulateGrad, or None for a constant."""
    out = []
    for t, parent in zip(node.inputs, node.parents):
        if parent is not None:
            out.append((parent, 0))
        elif t is not None and t.requires_grad:
            out.append((accumulate_grad(t), 0))
        else:
            out.append((None, 0))
    return tuple(out)


def _arrays(value, found):
    if isinstance(value, (tuple, list)):
        for v in value:
            _arrays(v, found)
    elif hasattr(value, "nbytes") and hasattr(value, "dtype") and not isinstance(value, np.generic):
        found.setdefault(id(value), value)


def saved_arrays(fn):
    """The arrays ``fn`` holds for backward: ``fn.saved`` and array attributes, each once."""
    found = {}
    _arrays(fn.saved, found)
    for key, value in vars(fn).items():
        if key != "saved":
            _arrays(value, found)
    return list(found.values())


def saved_bytes(node):
    return sum(int(a.nbytes) for a in saved_arrays(node.fn))


def _extent(array):
    """(first, last + 1) byte address that ``array`` spans."""
    if isinstance(array, np.ndarray):
        return _byte_bounds(array)
    ptr = array.__cuda_array_interface__["data"][0]
    return ptr, ptr + int(array.nbytes)


def distinct_bytes(arrays):
    """Bytes covered by the union of the arrays' memory extents (shared buffers count once)."""
    spans = sorted(_extent(a) for a in arrays if a.nbytes)
    total, end = 0, None
    for lo, hi in spans:
        if end is None or lo >= end:
            total += hi - lo
            end = hi
        elif hi > end:
            total += hi - end
            end = hi
    return total


def nodes_in_order(t):
    """The nodes leading to ``t``, in tape (forward) order."""
    if t.grad_fn is None:
        return []
    seen, stack = {}, [t.grad_fn]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen[id(node)] = node
            stack.extend(p for p in node.parents if p is not None)
    return sorted(seen.values(), key=lambda n: n.index)


def outputs_of(t, nodes):
    """{id(node): the tensor it made}, found among its consumers' inputs (``t`` for the root)."""
    out = {id(t.grad_fn): t}
    for node in nodes:
        for tensor, parent in zip(node.inputs, node.parents):
            if parent is not None:
                out.setdefault(id(parent), tensor)
    return out


def _shape(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def format_tape(t):
    """A table of the nodes leading to ``t``, in tape order, closed by the total saved bytes.

    Each line: index, op, input shapes -> output shape, dtype, device, bytes
    saved for backward. The last line adds the saved bytes of every node and
    the distinct memory they keep alive (arrays that share a buffer, such as
    ReLU's output saved again as the next Linear's input, count once there).
    """
    nodes = nodes_in_order(t)
    made = outputs_of(t, nodes)
    rows = []
    for i, node in enumerate(nodes):
        out = made[id(node)]
        shapes = " ".join(_shape(x.shape) for x in node.inputs if x is not None)
        rows.append((str(i), node_name(node), f"{shapes} -> {_shape(out.shape)}", str(out.dtype),
                     out.device, f"{saved_bytes(node):,}"))
    head = ("#", "op", "inputs -> output", "dtype", "device", "saved bytes")
    widths = [max(len(r[k]) for r in rows + [head]) for k in range(len(head))]
    align = ["<", "<", "<", "<", "<", ">"]

    def line(r):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(r, align, widths)).rstrip()

    lines = [line(head), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]
    total = sum(saved_bytes(n) for n in nodes)
    distinct = distinct_bytes([a for n in nodes for a in saved_arrays(n.fn)])
    lines.append(f"total saved for backward: {total:,} bytes in {len(nodes)} nodes "
                 f"({distinct:,} bytes of distinct memory)")
    return "\n".join(lines)
