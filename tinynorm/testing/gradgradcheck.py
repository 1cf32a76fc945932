"""Second-order gradient checking in float64: the double backward against finite differences.

``gradgradcheck(fn, inputs)`` checks the gradient of the first-order
gradient, as ``torch.autograd.gradgradcheck`` does. With a random cotangent
``u`` of ``fn``'s output and random vectors ``v_i``, one per input (and
``v_u`` for ``u`` itself), the scalar

    s(x, u) = sum_i <v_i, d<u, fn(x)>/dx_i> + <v_u, ...>

is differentiated two ways: by the tape (``autograd.grad`` with
``create_graph=True``, then ``autograd.grad`` of ``s``), and by central
differences of the first-order gradients, ``(s(x + h e_j) - s(x - h e_j)) / 2h``.
Since the first-order gradient is linear in ``u``, ``ds/du`` checks the
gradient of the backward with respect to its incoming gradient too.
"""
import numpy as np

from ..autograd import grad
from ..tensor import Tensor
from .arguments import finite_difference_call, output
from .gradcheck import assert_close, central_differences


def _first_order(fn, arrays, u, wrt, create_graph):
    leaves = [Tensor(a, requires_grad=True) for a in arrays]
    u_t = Tensor(u, requires_grad=create_graph)
    out = fn(*leaves)
    grads = grad(out, [leaves[i] for i in wrt], grad_outputs=u_t, create_graph=create_graph,
                 allow_unused=True)
    return leaves, u_t, grads


def _contract(grads, vs, create_graph):
    total = None
    for g, v in zip(grads, vs):
        if g is None:
            continue
        term = (g * Tensor(v)).sum() if create_graph else float(np.sum(g.data * v))
        total = term if total is None else total + term
    return total


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, wrt=None, name=None):
    """Assert that the second-order gradient of ``fn`` matches finite differences of its first.

    ``fn`` takes Tensors and returns one Tensor; ``inputs`` are arrays (cast
    to float64); ``wrt`` lists the indices of the inputs that are
    differentiated (default: all). ``name`` names the op in the message.
    Raises AssertionError naming the op, the input ("grad_output" for the
    incoming gradient), the index, the analytic value (got) and the numeric one
    (expected); returns True.
    """
    who = "gradgradcheck"
    arrays, wrt = finite_difference_call(who, fn, inputs, wrt, eps, atol, rtol)
    name = name or getattr(fn, "__name__", "fn")
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(output(fn(*[Tensor(a) for a in arrays]), who).shape)
    vs = [rng.standard_normal(arrays[i].shape) for i in wrt]

    leaves, u_t, grads = _first_order(fn, arrays, u, wrt, True)
    s = _contract(grads, vs, True)
    if s is None or not s.requires_grad:
        raise AssertionError(f"gradgradcheck {name}: the first-order gradient does not depend on "
                             "the inputs or the incoming gradient; nothing to check")
    targets = [leaves[i] for i in wrt] + [u_t]
    analytic = grad(s, targets, allow_unused=True)

    def numeric_s(arrs, uu):
        _, _, g1 = _first_order(fn, arrs, uu, wrt, False)
        return _contract(g1, vs, False)

    labels = [f"input {i}" for i in wrt] + ["grad_output"]
    points = [arrays[i] for i in wrt] + [u]
    for label, point, got in zip(labels, points, analytic):
        got = np.zeros_like(point) if got is None else np.asarray(got.data, dtype=np.float64)
        expected = central_differences(point, lambda: numeric_s(arrays, u), eps)
        assert_close(got, expected, atol, rtol, lambda j, worst: (
            f"gradgradcheck failed for {name}: {label} (shape {point.shape}) at index {j}: "
            f"got {got[j]!r}, expected {expected[j]!r} (max abs error {worst:.3g})"))
    return True
