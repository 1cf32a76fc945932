"""The tape drawn as a graph: Graphviz DOT source, and a rendered SVG or PNG.

``make_dot(t, params=None)`` needs nothing but the standard library. It draws
what PyTorch users know from torchviz: one box per tape node
(``NativeBatchNormBackward0``), one light-blue box per leaf that requires grad
(its name from ``params``, e.g. ``dict(model.named_parameters())``, and its
shape), a green box for ``t`` itself, and an edge from each node to the node
that consumed its output (the direction of the forward pass).

``render(t, path, format="svg")`` needs the ``graphviz`` Python package
(``pip install 'tinynorm[viz]'``) and Graphviz's ``dot`` program.
"""
import os

from .tape import nodes_in_order


class VizUnavailable(ImportError):
    """``render`` cannot draw: the graphviz package or the dot program is missing."""


def _quote(text):
    text = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + text + '"'


def _shape(shape):
    return str(tuple(int(d) for d in shape))


def make_dot(t, params=None, show_saved=False):
    """DOT source of the graph that leads to ``t`` (see the module docstring).

    Node ids are stable: ``n<k>`` for the k-th tape node in tape order,
    ``p<k>`` for the k-th leaf met, ``out`` for ``t``. With ``show_saved`` each
    node's label also gives the bytes it saved for backward.
    """
    from .tape import saved_bytes
    from .tensor import Tensor
    if not isinstance(t, Tensor):
        raise TypeError(f"make_dot expects a Tensor, got {type(t).__name__}")
    if params is not None and not hasattr(params, "items"):
        raise TypeError("make_dot: params must be a dict of name -> Tensor, e.g. "
                        "dict(model.named_parameters())")
    names = {id(p): name for name, p in (params or {}).items()}
    nodes = nodes_in_order(t)
    ids = {id(n): f"n{k}" for k, n in enumerate(nodes)}
    lines = ["digraph tape {",
             '  graph [rankdir=TB, fontname="Helvetica"];',
             '  node [shape=box, style=filled, fillcolor=lightgrey, fontname="Helvetica", '
             'fontsize=11, height=0.2];',
             "  edge [arrowsize=0.7];"]
    leaves = {}
    edges = []
    for node in nodes:
        label = node.name()
        if show_saved:
            label += f"\nsaved {saved_bytes(node):,} B"
        lines.append(f"  {ids[id(node)]} [label={_quote(label)}];")
        for x, parent in zip(node.inputs, node.parents):
            if parent is not None:
                edges.append((ids[id(parent)], ids[id(node)]))
            elif x is not None and x.requires_grad:
                leaf = leaves.get(id(x))
                if leaf is None:
                    leaf = leaves[id(x)] = f"p{len(leaves)}"
                    title = names.get(id(x), "")
                    text = f"{title}\n{_shape(x.shape)}" if title else _shape(x.shape)
                    lines.append(f"  {leaf} [label={_quote(text)}, fillcolor=lightblue];")
                edges.append((leaf, ids[id(node)]))
    lines.append(f"  out [label={_quote(_shape(t.shape))}, fillcolor=darkolivegreen1];")
    if nodes:
        edges.append((ids[id(t.grad_fn)], "out"))
    elif t.requires_grad:
        lines[-1] = f"  out [label={_quote(names.get(id(t), '') + ' ' + _shape(t.shape))}, " \
                    "fillcolor=lightblue];"
    lines.extend(f"  {a} -> {b};" for a, b in edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


_INSTALL = ("tinynorm.viz.render needs the graphviz Python package and Graphviz's dot program: "
            "pip install 'tinynorm[viz]' and install Graphviz (apt-get install graphviz, "
            "brew install graphviz, or https://graphviz.org/download/)")


def render(t, path, format="svg", params=None):
    """Draw the graph of ``t`` into ``path`` (``.svg`` or ``.png``); returns the path written.

    Raises :class:`VizUnavailable` (an ImportError) with a one-line message
    naming what to install when the graphviz package or ``dot`` is missing.
    """
    if format not in ("svg", "png"):
        raise ValueError(f"render: format must be 'svg' or 'png', got {format!r}")
    source = make_dot(t, params)
    try:
        import graphviz
    except ImportError:
        raise VizUnavailable(_INSTALL) from None
    root, ext = os.path.splitext(str(path))
    target = str(path) if ext == f".{format}" else f"{path}.{format}"
    try:
        data = graphviz.Source(source).pipe(format=format)
    except graphviz.ExecutableNotFound:
        raise VizUnavailable(_INSTALL) from None
    with open(target, "wb") as f:
        f.write(data)
    return target


__all__ = ["make_dot", "render", "VizUnavailable"]
