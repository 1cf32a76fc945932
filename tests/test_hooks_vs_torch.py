"""Hooks against PyTorch: each scenario runs on torch and on tinynorm and must log the same events.

Tensor hooks (order, replacement, removal, a tensor used twice, leaves across
backward calls, retain_grad) and module hooks (forward pre, forward, full
backward, removal, a module whose input needs no grad). A scenario is a
function ``(lib, log)`` that builds the same graph with either library and
appends what its hooks saw (gradients rounded to plain lists).
"""
import numpy as np
import pytest

import tinynorm as tn
from tinynorm import nn

torch = pytest.importorskip("torch")


def T(lib, values, requires_grad=True):
    if lib == "torch":
        return torch.tensor(values, dtype=torch.float64, requires_grad=requires_grad)
    return tn.tensor(np.array(values, dtype=np.float64), requires_grad=requires_grad)


def val(t):
    if t is None:
        return None
    data = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t.data)
    return np.round(data, 9).tolist()


def linear(lib, weight, bias):
    """A float64 Linear with the given weight (out, in) and bias."""
    w, b = np.asarray(weight, dtype=np.float64), np.asarray(bias, dtype=np.float64)
    if lib == "torch":
        m = torch.nn.Linear(w.shape[1], w.shape[0]).double()
        with torch.no_grad():
            m.weight.copy_(torch.from_numpy(w))
            m.bias.copy_(torch.from_numpy(b))
        return m
    m = nn.Linear(w.shape[1], w.shape[0])
    m.weight.data, m.bias.data = w.copy(), b.copy()
    return m


def order_and_replacement(lib, log):
    x = T(lib, [1.0, 2.0, 3.0])
    y = x * 2
    y.register_hook(lambda g: (log.append(("first", val(g))), g * 10)[1])
    y.register_hook(lambda g: log.append(("second sees the replacement", val(g))))
    x.register_hook(lambda g: log.append(("leaf", val(g))))
    (y * y).sum().backward()
    log.append(("x.grad", val(x.grad)))


def removal(lib, log):
    x = T(lib, [1.0, 2.0])
    y = x + 1
    handle = y.register_hook(lambda g: g * 0)
    leaf = x.register_hook(lambda g: g * 0)
    kept = y.register_hook(lambda g: (log.append(("kept", val(g))), None)[1])
    handle.remove()
    leaf.remove()
    leaf.remove()
    (y * 3).sum().backward(retain_graph=True)
    kept.remove()
    (y * 3).sum().backward()
    log.append(("x.grad", val(x.grad)))


def leaf_used_twice(lib, log):
    x = T(lib, [1.0, 2.0])
    x.register_hook(lambda g: (log.append(("once, with the summed grad", val(g))), g + 1)[1])
    (x * 3 + x * x).sum().backward()
    log.append(("x.grad", val(x.grad)))


def intermediate_used_twice(lib, log):
    x = T(lib, [1.0, 2.0])
    y = x * 2
    y.register_hook(lambda g: (log.append(("y", val(g))), g * 0.5)[1])
    (y * y + y).sum().backward()
    log.append(("x.grad", val(x.grad)))


def leaf_hook_each_backward(lib, log):
    x = T(lib, [1.0, 2.0])
    x.register_hook(lambda g: (log.append(("hook", val(g))), g * 2)[1])
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    log.append(("x.grad accumulates replacements", val(x.grad)))


def retain_grad(lib, log):
    x = T(lib, [1.0, 2.0])
    y = x * x
    y.register_hook(lambda g: g * 2)
    y.retain_grad()
    y.register_hook(lambda g: g * 3)
    z = (y * y).sum()
    z.backward(retain_graph=True)
    log.append(("after one", val(y.grad), val(x.grad), y.retains_grad, x.retains_grad))
    z.backward()
    log.append(("after two", val(y.grad), val(x.grad)))


def module_hooks(lib, log):
    lin = linear(lib, [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], [0.0, 1.0])
    lin.register_forward_pre_hook(lambda m, args: log.append(("pre", len(args), val(args[0]))))

    def double_args(m, args):
        return (args[0] * 2,)
    pre = lin.register_forward_pre_hook(double_args)
    fwd = lin.register_forward_hook(lambda m, args, out: (log.append(("fwd", val(out))), out * 2)[1])

    def backward_hook(m, grad_input, grad_output):
        log.append(("bwd", [val(g) for g in grad_input], [val(g) for g in grad_output]))
        return tuple(None if g is None else g * 0 + 1 for g in grad_input)
    bwd = lin.register_full_backward_hook(backward_hook)
    x = T(lib, [[1.0, 2.0, 3.0]])
    y = lin(x)
    (y * y).sum().backward()
    log.append(("grads", val(x.grad), val(lin.weight.grad), val(lin.bias.grad)))
    for h in (pre, fwd, bwd):
        h.remove()
    x.grad = None
    (lin(x) * 1).sum().backward()
    log.append(("after remove", val(x.grad)))


def module_input_without_grad(lib, log):
    lin = linear(lib, [[1.0, -1.0]], [0.5])
    lin.register_full_backward_hook(
        lambda m, gi, go: log.append(("bwd", [g is None for g in gi], [val(g) for g in go])))
    x = T(lib, [[1.0, 2.0]], requires_grad=False)
    (lin(x) * 4).sum().backward()
    log.append(("weight.grad", val(lin.weight.grad)))


def module_used_twice(lib, log):
    lin = linear(lib, [[2.0]], [0.0])
    lin.register_full_backward_hook(
        lambda m, gi, go: log.append(("bwd", [val(g) for g in gi], [val(g) for g in go])))
    x = T(lib, [[1.5]])
    (lin(lin(x)) * 3).sum().backward()
    log.append(("x.grad", val(x.grad)))


SCENARIOS = [order_and_replacement, removal, leaf_used_twice, intermediate_used_twice,
             leaf_hook_each_backward, retain_grad, module_hooks, module_input_without_grad,
             module_used_twice]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_hooks_log_what_torch_logs(scenario):
    logs = {}
    for lib in ("torch", "tinynorm"):
        logs[lib] = []
        scenario(lib, logs[lib])
    assert logs["torch"], "the scenario logged nothing"
    assert logs["tinynorm"] == logs["torch"]


def test_hook_changing_the_shape_is_an_error():
    x = tn.tensor(np.ones(3), requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: tn.tensor(np.ones(4)))
    with pytest.raises(RuntimeError, match="changed the size"):
        y.sum().backward()


def test_hooks_need_a_tensor_that_requires_grad_and_a_callable():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        tn.tensor(np.ones(2)).register_hook(lambda g: g)
    with pytest.raises(TypeError, match="callable"):
        tn.tensor(np.ones(2), requires_grad=True).register_hook(3)
