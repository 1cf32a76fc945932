"""Finite-difference gradient checking in float64.

``gradcheck(fn, inputs)`` compares the tape's vector-Jacobian product with
central finite differences in float64: for a random cotangent ``u``,
``d <u, fn(x)> / d x_i  ~=  (<u, fn(x + h e_i)> - <u, fn(x - h e_i)>) / (2h)``.
"""
import numpy as np

from ..autograd import no_grad
from ..backend import to_numpy
from ..tensor import Tensor
from .arguments import finite_difference_call, output


def _as_leaf(x):
    arr = np.array(to_numpy(x), dtype=np.float64)
    return Tensor(arr, requires_grad=True)


def central_differences(x, f, eps):
    """``(f() at x_j + eps - f() at x_j - eps) / 2 eps`` for every element ``x_j`` of ``x``, which
    is changed in place and restored; ``f`` reads ``x`` and returns a number."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        plus = f()
        flat[i] = orig - eps
        minus = f()
        flat[i] = orig
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def assert_close(got, expected, atol, rtol, message):
    """Raise AssertionError(message(j, worst)) unless ``|got - expected| <= atol + rtol |expected|``
    everywhere: ``j`` is the index of the element furthest outside, ``worst`` the largest absolute
    error."""
    err = np.abs(got - expected)
    tol = atol + rtol * np.abs(expected)
    if not np.all(err <= tol):
        j = np.unravel_index(np.argmax(err - tol), err.shape)
        raise AssertionError(message(j, err.max()))


def numerical_grad(fn, arrays, cotangent, index, eps=1e-6):
    """Central-difference gradient of ``<cotangent, fn(*arrays)>`` w.r.t. ``arrays[index]``."""
    with no_grad():
        return central_differences(
            arrays[index],
            lambda: np.sum(np.asarray(fn(*[Tensor(a) for a in arrays]).data) * cotangent), eps)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, seed=0, wrt=None):
    """Assert that ``fn``'s backward matches finite differences for every input in ``wrt``.

    ``fn`` takes Tensors and returns one Tensor; ``inputs`` are arrays (cast to
    float64). ``wrt`` lists the indices to check (default: all). Raises
    AssertionError naming the input and the worst element; returns True.
    """
    who = "gradcheck"
    arrays, wrt = finite_difference_call(who, fn, inputs, wrt, eps, atol, rtol)
    leaves = [_as_leaf(a) for a in arrays]
    out = output(fn(*leaves), who)
    cotangent = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(cotangent)
    for i in wrt:
        analytic = np.zeros_like(arrays[i]) if leaves[i].grad is None else leaves[i].grad.data
        numeric = numerical_grad(fn, arrays, cotangent, i, eps)
        assert_close(analytic, numeric, atol, rtol, lambda j, worst: (
            f"gradcheck failed for input {i} (shape {arrays[i].shape}) at {j}: "
            f"analytic {analytic[j]!r}, numeric {numeric[j]!r}, max abs error {worst:.3g}"))
    return True
