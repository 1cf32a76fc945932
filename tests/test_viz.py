"""tinynorm.viz: the DOT of a small net whose graph is known, and render's missing-dependency message."""
import re
import sys

import numpy as np
import pytest

import tinynorm as tn
from tinynorm import nn, viz


def mlp_and_output():
    tn.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    return net, net(tn.tensor(np.ones((5, 4), dtype=np.float32)))


def parse(dot):
    labels = dict(re.findall(r'^\s+(\w+) \[label="([^"]*)"', dot, re.M))
    edges = re.findall(r"^\s+(\w+) -> (\w+);", dot, re.M)
    return labels, edges


def test_dot_has_the_nodes_edges_and_parameter_names_of_linear_relu_linear():
    net, out = mlp_and_output()
    dot = viz.make_dot(out, params=dict(net.named_parameters()))
    assert dot.startswith("digraph tape {") and dot.rstrip().endswith("}")
    labels, edges = parse(dot)
    by_label = {}
    for node, label in labels.items():
        by_label.setdefault(label, []).append(node)
    names = sorted(label for node, label in labels.items() if node.startswith("n"))
    assert names == sorted(["TBackward0", "AddmmBackward0", "ReluBackward0",
                            "TBackward0", "AddmmBackward0"])
    assert sorted(label for node, label in labels.items() if node.startswith("p")) == [
        "0.bias\\n(3,)", "0.weight\\n(3, 4)", "2.bias\\n(2,)", "2.weight\\n(2, 3)"]
    assert labels["out"] == "(5, 2)"
    name = {node: label.split("\\n")[0] for node, label in labels.items()}
    named_edges = sorted((name[a], name[b]) for a, b in edges)
    assert named_edges == sorted([
        ("0.weight", "TBackward0"), ("TBackward0", "AddmmBackward0"), ("0.bias", "AddmmBackward0"),
        ("AddmmBackward0", "ReluBackward0"), ("2.weight", "TBackward0"),
        ("ReluBackward0", "AddmmBackward0"), ("TBackward0", "AddmmBackward0"),
        ("2.bias", "AddmmBackward0"), ("AddmmBackward0", "(5, 2)")])
    # the chain is connected in tape order: n0 .. n4, out last
    assert ("n4", "out") in edges and ("n1", "n2") in edges and ("n2", "n4") in edges
    assert ("n0", "n1") in edges and ("n3", "n4") in edges


def test_dot_without_params_shows_shapes_and_a_leaf_used_twice_once():
    a = tn.tensor(np.ones(3), requires_grad=True)
    labels, edges = parse(viz.make_dot((a * a).sum()))
    leaves = [n for n in labels if n.startswith("p")]
    assert leaves == ["p0"] and labels["p0"] == "(3,)"
    assert edges.count(("p0", "n0")) == 2 and ("n1", "out") in edges


def test_make_dot_refuses_non_tensors():
    with pytest.raises(TypeError, match="expects a Tensor"):
        viz.make_dot(np.ones(3))
    with pytest.raises(TypeError, match="params must be a dict"):
        viz.make_dot(tn.ones(2), params=[1, 2])


def test_render_without_graphviz_names_what_to_install(monkeypatch, tmp_path):
    _, out = mlp_and_output()
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(viz.VizUnavailable) as info:
        viz.render(out, tmp_path / "g")
    message = str(info.value)
    assert "\n" not in message and "pip install 'tinynorm[viz]'" in message and "graphviz" in message
    with pytest.raises(ValueError, match="format must be"):
        viz.render(out, tmp_path / "g", format="pdf")


def test_render_writes_an_svg_when_graphviz_is_installed(tmp_path):
    graphviz = pytest.importorskip("graphviz")
    _, out = mlp_and_output()
    try:
        path = viz.render(out, tmp_path / "g", format="svg")
    except viz.VizUnavailable:
        pytest.skip("Graphviz's dot is not installed")
    text = open(path).read()
    assert path.endswith(".svg") and "<svg" in text and "ReluBackward0" in text
    assert graphviz is not None
