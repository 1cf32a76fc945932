"""grad_fn, next_functions and format_tape: PyTorch's names, the graph's structure, real saved bytes."""
import numpy as np
import pytest

import tinynorm as tn
from tinynorm import autograd, nn
from tinynorm import functional as F
from tinynorm.tape import AccumulateGrad, saved_bytes


def leaf(*shape, dtype=np.float64, seed=0):
    return tn.tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype),
                     requires_grad=True)


def test_leaves_have_no_grad_fn_and_ops_name_their_node():
    a, b = leaf(3, 4), leaf(3, 4, seed=1)
    assert a.grad_fn is None and tn.ones(2).grad_fn is None
    y = a * b
    assert y.grad_fn.name() == "MulBackward0"
    with tn.no_grad():
        assert (a * b).grad_fn is None


def test_next_functions_lead_to_accumulate_grad_and_none_for_constants():
    a = leaf(3)
    y = a * 2.0
    (first, k0), (second, k1) = y.grad_fn.next_functions
    assert isinstance(first, AccumulateGrad) and first.name() == "AccumulateGrad"
    assert first.variable is a and second is None and k0 == k1 == 0
    z = (y + a).sum()
    add = z.grad_fn.next_functions[0][0]
    assert add.name() == "AddBackward0"
    assert add.next_functions[0][0] is y.grad_fn
    assert add.next_functions[1][0] is first, "one AccumulateGrad node per leaf, as in PyTorch"
    assert first.next_functions == ()


def _graph_names(fn):
    names, stack, seen = [], [fn], set()
    while stack:
        f = stack.pop()
        if f is None or id(f) in seen:
            continue
        seen.add(id(f))
        names.append(f.name().replace("torch::autograd::", ""))
        stack.extend(p for p, _ in f.next_functions)
    return sorted(names)


def _ops(lib, fn_module, x, w, v, tensor):
    """The same expressions in tinynorm and torch: (label, output)."""
    return [
        ("add", x + w), ("sub", x - 1.0), ("div", x / w), ("neg", -x), ("pow", x ** 2),
        ("exp", x.exp()), ("tanh", x.tanh()), ("sigmoid", x.sigmoid()), ("relu", x.relu()),
        ("sum", x.sum()), ("sum_dim", x.sum(1)), ("mean", x.mean()), ("mean_dim", x.mean(0)),
        ("mm", x @ v), ("view", x.reshape(-1)), ("permute", x.permute(1, 0)), ("select", x[0]),
        ("slice", x[1:]), ("log_softmax", fn_module.log_softmax(x, dim=1)),
        ("bn", fn_module.batch_norm(x, None, None, training=True)),
        ("gn", fn_module.group_norm(x.reshape(3, 4, 1), 2)),
        ("ln", fn_module.layer_norm(x, (4,))),
        ("maximum", lib.maximum(x, w)), ("cat", lib.cat([x, x])), ("stack", lib.stack([x, x])),
        ("maxpool", fn_module.max_pool2d(x.reshape(1, 1, 3, 4), 2)),
        ("avgpool", fn_module.avg_pool2d(x.reshape(1, 1, 3, 4), 2)),
        ("conv", fn_module.conv2d(x.reshape(1, 1, 3, 4), tensor(np.ones((2, 1, 2, 2))))),
        ("linear", fn_module.linear(x, w)), ("linear_bias", fn_module.linear(x, w, x.sum(0)[1:])),
        ("linear_3d", fn_module.linear(x.reshape(3, 1, 4), w, x.sum(0)[1:])),
    ]


def test_node_names_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    xs, ws, vs = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)) + 3, rng.standard_normal((4, 2))
    ours = _ops(F, F, leaf(3, 4), tn.tensor(ws, requires_grad=True), leaf(4, 2), tn.tensor)
    ta = lambda a: torch.tensor(a, requires_grad=True)  # noqa: E731
    theirs = _ops(torch, torch.nn.functional, ta(xs), ta(ws), ta(vs), lambda a: torch.tensor(a))
    for (label, mine), (_, ref) in zip(ours, theirs):
        assert mine.grad_fn.name() == ref.grad_fn.name(), label
        assert _graph_names(mine.grad_fn) == _graph_names(ref.grad_fn), label


def test_user_function_is_named_like_a_torch_autograd_function():
    class Twice(autograd.Function):
        def forward(self, x):
            return 2 * x

        def backward(self, g):
            return 2 * g

    assert Twice.apply(leaf(2)).grad_fn.name() == "TwiceBackward"
    rm, rs = tn.zeros(3, dtype=np.float64), tn.ones(3, dtype=np.float64)
    assert F.batch_renorm(leaf(4, 3), rm, rs, training=True).grad_fn.name() == "BatchRenormBackward0"


def test_saved_bytes_are_the_arrays_the_functions_hold():
    a, b = leaf(3, 4), leaf(4, 5, seed=1)
    mm = a @ b
    assert saved_bytes(mm.grad_fn) == a.data.nbytes + b.data.nbytes
    r = mm.relu()
    assert saved_bytes(r.grad_fn) == r.data.nbytes
    x = leaf(6, 2, 5, dtype=np.float32)
    y = F.batch_norm(x, None, None, training=True)
    # x itself, plus the float64 per-channel mean, invstd and count the backward needs
    assert saved_bytes(y.grad_fn) == x.data.nbytes + 3 * 2 * 8
    s = (a + 1.0).sum()
    assert saved_bytes(s.grad_fn) == 0 and saved_bytes(s.grad_fn.next_functions[0][0]) == 0


def test_format_tape_lists_nodes_in_tape_order_with_a_total():
    tn.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = tn.tensor(np.ones((5, 4), dtype=np.float32))
    out = net(x)
    lines = autograd.format_tape(out).splitlines()
    ops = [line.split()[1] for line in lines[2:-1]]
    # PyTorch's nn.Linear tape: TBackward0 (the weight's transpose) feeding AddmmBackward0
    assert ops == ["TBackward0", "AddmmBackward0", "ReluBackward0", "TBackward0", "AddmmBackward0"]
    assert [line.split()[0] for line in lines[2:-1]] == [str(i) for i in range(5)]
    assert lines[2].endswith(" 0")
    mm1 = lines[3]
    assert "[3] [5, 4] [4, 3] -> [5, 3]" in mm1 and "float32" in mm1 and "cpu" in mm1
    # addmm saves its two matrix operands, the input and the transposed weight
    assert mm1.endswith(f"{5 * 4 * 4 + 4 * 3 * 4:,}")
    relu_bytes = 5 * 3 * 4
    total = (5 * 4 + 4 * 3) * 4 + relu_bytes + (5 * 3 + 3 * 2) * 4
    assert lines[-1].startswith(f"total saved for backward: {total:,} bytes in 5 nodes")
    # ReLU's output is saved again by the second addmm: distinct memory counts it once
    assert f"({total - relu_bytes:,} bytes of distinct memory)" in lines[-1]


def test_format_tape_after_backward_shows_freed_saves():
    a = leaf(3)
    y = (a * a).sum()
    y.backward()
    assert autograd.format_tape(y).splitlines()[-1].startswith("total saved for backward: 0 bytes")
    assert autograd.format_tape(a).splitlines()[-1].startswith("total saved for backward: 0 bytes in 0")
