"""Tensor and module hooks against PyTorch: order, replacement, removal, tensors used twice."""
import numpy as np
import pytest

import tinynorm as tn
from tinynorm import nn
from tinynorm.testing import gradcheck

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])


class Lib:
    """The few calls the scenarios need, for tinynorm or torch."""

    def __init__(self, torch=None):
        self.torch = torch

    def leaf(self, a):
        if self.torch:
            return self.torch.tensor(a, requires_grad=True)
        return tn.tensor(a, requires_grad=True)

    def arr(self, t):
        if t is None:
            return None
        return t.detach().numpy().copy() if self.torch else np.array(t.numpy())

    def linear(self, w, b):
        if self.torch:
            m = self.torch.nn.Linear(w.shape[1], w.shape[0]).double()
            with self.torch.no_grad():
                m.weight.copy_(self.torch.tensor(w))
                m.bias.copy_(self.torch.tensor(b))
            return m
        m = nn.Linear(w.shape[1], w.shape[0]).double()
        m.weight.data[...] = w
        m.bias.data[...] = b
        return m

    def const(self, a):
        return self.torch.tensor(a) if self.torch else tn.tensor(a)


def libs():
    torch = pytest.importorskip("torch")
    return Lib(), Lib(torch)


def both(scenario):
    ours, theirs = libs()
    a, b = scenario(ours), scenario(theirs)
    _assert_same(a, b)
    return a


def tags_seen(scenario):
    """The tags of the ``(tag, gradient)`` pairs the hooks of ``scenario`` record, after ``both``
    found tinynorm and torch alike."""
    seen, _ = both(scenario)
    return [s[0] for s in seen]


def _assert_same(a, b, path="result"):
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=path)
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


def test_tensor_hooks_run_in_order_and_replace():
    def scenario(L):
        seen = []
        x = L.leaf(X)
        y = x * 3.0
        y.register_hook(lambda g: seen.append(("first", L.arr(g))) or g * 2.0)
        y.register_hook(lambda g: seen.append(("second", L.arr(g))))
        y.register_hook(lambda g: g + 1.0)
        (y * y).sum().backward()
        return seen, L.arr(x.grad)
    assert tags_seen(scenario) == ["first", "second"]


def test_removed_hooks_stop_running():
    def scenario(L):
        seen = []
        x = L.leaf(X)
        y = x * 2.0
        h1 = y.register_hook(lambda g: g * 10.0)
        h2 = x.register_hook(lambda g: seen.append("leaf") or g * 0.5)
        y.sum().backward(retain_graph=True)
        first = L.arr(x.grad)
        h1.remove()
        h2.remove()
        h2.remove()
        x.grad = None
        y.sum().backward()
        return seen, first, L.arr(x.grad)
    both(scenario)


def test_hooks_on_tensors_used_twice_fire_once_with_the_summed_gradient():
    def scenario(L):
        seen = []
        x = L.leaf(X)
        y = x * 1.0
        x.register_hook(lambda g: seen.append(("x", L.arr(g))))
        y.register_hook(lambda g: seen.append(("y", L.arr(g))))
        (y * 2.0 + y * y + x * 3.0).sum().backward()
        return seen, L.arr(x.grad)
    assert tags_seen(scenario) == ["y", "x"]


def test_hook_order_across_tensors_follows_the_backward_walk():
    def scenario(L):
        seen = []
        x, w = L.leaf(X), L.leaf(X + 1)
        y = x * w
        y.register_hook(lambda g: seen.append("y"))
        x.register_hook(lambda g: seen.append("x"))
        w.register_hook(lambda g: seen.append("w"))
        z = y * 3.0
        z.register_hook(lambda g: seen.append("z"))
        z.sum().backward()
        return seen
    assert both(scenario) == ["z", "y", "x", "w"]


def test_retain_grad_sees_the_hooked_gradient_and_accumulates():
    def scenario(L):
        x = L.leaf(X)
        y = x * 2.0
        y.retain_grad()
        y.register_hook(lambda g: g * 10.0)
        z = (y * y).sum()
        z.backward(retain_graph=True)
        once = L.arr(y.grad)
        z.backward()
        x.retain_grad()
        return once, L.arr(y.grad), L.arr(x.grad), y.retains_grad, x.retains_grad
    both(scenario)


def test_hook_errors_are_pytorchs():
    x = tn.tensor(X)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        x.register_hook(lambda g: g)
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        x.retain_grad()
    y = tn.tensor(X, requires_grad=True) * 2.0
    y.register_hook(lambda g: tn.ones(5))
    with pytest.raises(RuntimeError, match="changed the size"):
        y.sum().backward()
    with pytest.raises(TypeError, match="callable"):
        tn.tensor(X, requires_grad=True).register_hook(3)


W, B = np.array([[1.0, -2.0, 0.5], [0.25, 1.0, -1.0]]), np.array([0.1, -0.3])


def test_module_forward_hooks_change_args_and_output():
    def scenario(L):
        m = L.linear(W, B)
        calls = []
        m.register_forward_pre_hook(lambda mod, args: calls.append("pre") or (args[0] * 2.0,))
        h = m.register_forward_hook(lambda mod, args, out: calls.append(("fwd", L.arr(args[0])))
                                    or out + 1.0)
        first = L.arr(m(L.const(X)))
        h.remove()
        return calls, first, L.arr(m(L.const(X)))
    both(scenario)


def test_full_backward_hook_sees_and_replaces_grad_input():
    def scenario(L):
        m = L.linear(W, B)
        seen = []

        def hook(mod, grad_input, grad_output):
            seen.append(([L.arr(g) for g in grad_input], [L.arr(g) for g in grad_output]))
            return (grad_input[0] * 3.0,)
        h = m.register_full_backward_hook(hook)
        x = L.leaf(X)
        out = m(x)
        (out * out).sum().backward()
        replaced = L.arr(x.grad)
        h.remove()
        x.grad = None
        (m(x) * m(x)).sum().backward()
        return seen, replaced, L.arr(x.grad), L.arr(m.weight.grad)
    seen, *_ = both(scenario)
    assert len(seen) == 1


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_full_backward_hook_without_input_grad_and_module_called_twice():
    def scenario(L):
        m = L.linear(W, B)
        seen = []
        m.register_full_backward_hook(
            lambda mod, gi, go: seen.append((gi[0] is None, L.arr(go[0]))))
        m(L.const(X)).sum().backward()
        x = L.leaf(X)
        (m(x) + m(x * 2.0)).sum().backward()
        return seen, L.arr(x.grad)
    seen, _ = both(scenario)
    assert [s[0] for s in seen] == [True, False, False]


def test_handles_work_as_context_managers():
    m = nn.Linear(3, 2)
    calls = []
    with m.register_forward_hook(lambda *a: calls.append(1)):
        m(tn.ones(1, 3))
    m(tn.ones(1, 3))
    assert calls == [1]


def test_gradcheck_through_a_module_with_a_full_backward_hook():
    tn.manual_seed(0)
    m = nn.Linear(3, 2).double()
    m.register_full_backward_hook(lambda mod, gi, go: None)
    m.register_forward_hook(lambda mod, args, out: out * 1.0)
    rng = np.random.default_rng(3)
    assert gradcheck(lambda x: m(x).tanh(), [rng.standard_normal((4, 3))])
