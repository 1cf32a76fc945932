"""Probe 3's autograd, module and dtype findings (S1, S2, S3, S5, R5, R6, R8), one row each: bad
calls with the exception type and a phrase of the message, legal calls with the value or gradient
torch gives (checked against torch when it is installed, else against the hand-derived value)."""
import numpy as np
import pytest

import tinynorm as tn
from tinynorm import functional as F
from tinynorm import nn, optim

from bad_input_tables import names_once_test, raises_test


def graph_tensor():
    return tn.tensor(np.arange(8, dtype=np.float32).reshape(2, 4), requires_grad=True) * 2


def view_taken_then_base_written():
    """torch rebases the earlier view; tinynorm refuses its stale gradient at backward."""
    x = tn.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    y = x * 2
    a = y[0]
    y.zero_()
    a.sum().backward()


def plain_view_with_grad_source():
    w = tn.zeros(2, 4)
    w[0].copy_(tn.ones(4, requires_grad=True))


P = np.array([[0.3, 0.7], [0.6, 0.4]], np.float32)
Q = np.array([[0.2, 0.8], [0.5, 0.5]], np.float32)
W2 = np.array([0.5, 2.0], np.float32)


def req(a):
    return tn.tensor(a, requires_grad=True)


def param_module():
    m = nn.Module()
    m.register_parameter("w", nn.Parameter(np.ones(2, np.float32)))
    return m


def with_attr(name):
    m = nn.Module()
    setattr(m, name, 1)
    return m


def buffered():
    m = nn.Module()
    m.register_buffer("b", tn.ones(1))
    return m


BAD = [
    # S3: a non-Parameter over a parameter slot, register_parameter of a non-Parameter
    ("weight = Tensor", lambda: setattr(nn.Linear(2, 2), "weight", tn.ones(2, 2)), TypeError,
     "cannot assign 'tinynorm.Tensor' as parameter 'weight' (tinynorm.nn.Parameter or None expected)"),
    ("weight = ndarray", lambda: setattr(nn.Linear(2, 2), "weight", np.ones((2, 2), np.float32)),
     TypeError, "cannot assign 'numpy.ndarray' as parameter 'weight'"),
    ("bias = 0.0", lambda: setattr(nn.Linear(2, 2), "bias", 0.0), TypeError,
     "cannot assign 'float' as parameter 'bias'"),
    ("register_parameter(Tensor)", lambda: nn.Module().register_parameter("w", tn.ones(1)),
     TypeError, "cannot assign 'tinynorm.Tensor' object to parameter 'w'"),
    ("register_parameter(ndarray)", lambda: nn.Module().register_parameter("w", np.ones(1)),
     TypeError, "cannot assign 'numpy.ndarray' object to parameter 'w'"),
    ("register_parameter('a.b')", lambda: nn.Module().register_parameter(
        "a.b", nn.Parameter(np.ones(1, np.float32))), KeyError, 'contain "."'),
    ("register_parameter('')", lambda: nn.Module().register_parameter(
        "", nn.Parameter(np.ones(1, np.float32))), KeyError, "be empty string"),
    ("register_parameter(3, p)", lambda: nn.Module().register_parameter(
        3, nn.Parameter(np.ones(1, np.float32))), TypeError, "parameter name should be a string. Got int"),
    ("register_parameter over an attribute", lambda: with_attr("foo").register_parameter(
        "foo", nn.Parameter(np.ones(1, np.float32))), KeyError, "attribute 'foo' already exists"),
    ("register_buffer(3)", lambda: nn.Module().register_buffer("b", 3), TypeError,
     "cannot assign 'int' object to buffer 'b'"),
    ("register_buffer over a parameter", lambda: nn.Linear(2, 2).register_buffer(
        "weight", tn.ones(1)), KeyError, "attribute 'weight' already exists"),
    ("buffer = 3", lambda: setattr(buffered(), "b", 3), TypeError, "cannot assign 'int' as buffer 'b'"),
    ("child module = 3", lambda: setattr(nn.Sequential(nn.ReLU()), "0", 3), TypeError,
     "cannot assign 'int' as child module '0' (tinynorm.nn.Module or None expected)"),
    # R5: add_module checks the module and its name as torch does
    ("add_module('x', 3)", lambda: nn.Sequential(nn.ReLU()).add_module("x", 3), TypeError,
     "int is not a Module subclass"),
    ("add_module('x', Tensor)", lambda: nn.Sequential().add_module("x", tn.ones(1)), TypeError,
     "tinynorm.Tensor is not a Module subclass"),
    ("add_module('a.b')", lambda: nn.Sequential().add_module("a.b", nn.ReLU()), KeyError,
     'contain ".", got: a.b'),
    ("add_module('')", lambda: nn.Sequential().add_module("", nn.ReLU()), KeyError,
     "be empty string"),
    ("add_module(3, m)", lambda: nn.Sequential().add_module(3, nn.ReLU()), TypeError,
     "module name should be a string. Got int"),
    ("add_module('training')", lambda: nn.Sequential().add_module("training", nn.ReLU()), KeyError,
     "attribute 'training' already exists"),
    ("add_module('forward')", lambda: nn.Sequential().add_module("forward", nn.ReLU()), KeyError,
     "attribute 'forward' already exists"),
    ("add_module over a parameter", lambda: nn.Linear(2, 2).add_module("weight", nn.ReLU()),
     KeyError, "attribute 'weight' already exists"),
    # S2: an in-place write into a view of a graph tensor is refused, never silently wrong
    ("y[0].copy_(ones)", lambda: graph_tensor()[0].copy_(tn.ones(4)), RuntimeError,
     "copy_(): an in-place write into a view of a tensor is not supported when a gradient is "
     "recorded (the view is part of a graph)"),
    ("y.T.zero_()", lambda: graph_tensor().T.zero_(), RuntimeError,
     "zero_(): an in-place write into a view of a tensor is not supported"),
    ("y.reshape(8)[2:].zero_()", lambda: graph_tensor().reshape(8)[2:].zero_(), RuntimeError,
     "zero_(): an in-place write into a view"),
    ("zeros[0].copy_(source that requires grad)", plain_view_with_grad_source, RuntimeError,
     "(the source requires grad)"),
    ("view taken, base written, view's backward", view_taken_then_base_written, RuntimeError,
     "which is input 0 of GetItem, is at version 1; expected version 0"),
    # past S1: a loss weight torch does not differentiate is refused, not silently dropped
    ("bce weight requires grad", lambda: F.binary_cross_entropy(req(P), req(Q), weight=req(W2)),
     RuntimeError, "The function 'binary_cross_entropy' is not differentiable with respect to "
     "argument 'weight'"),
    ("bce_with_logits pos_weight requires grad", lambda: F.binary_cross_entropy_with_logits(
        req(P), req(Q), pos_weight=req(W2)), RuntimeError, "with respect to argument 'pos_weight'"),
    ("cross_entropy class weight requires grad", lambda: F.cross_entropy(
        req(P), tn.tensor(np.array([0, 1])), weight=req(W2)), RuntimeError,
     "The function 'nll_loss_forward' is not differentiable with respect to argument 'weight'"),
    ("nll_loss weight requires grad", lambda: F.nll_loss(req(P), tn.tensor(np.array([0, 1])),
                                                         weight=req(W2)), RuntimeError,
     "is not differentiable with respect to argument 'weight'"),
    # R8: relu of bool as torch (it was turned into int64)
    ("F.relu(bool)", lambda: F.relu(tn.tensor(np.array([True, False]))), RuntimeError,
     "Boolean inputs not supported for relu"),
]


test_bad_input = raises_test(BAD)
test_the_table_names_each_case_once = names_once_test(BAD)


def test_parameter_slots_keep_their_kind_as_torch():
    m = nn.Linear(2, 2)
    m.weight = None                                  # None keeps the slot, as torch
    assert "weight" in m._parameters and [n for n, _ in m.named_parameters()] == ["bias"]
    m.weight = nn.Parameter(np.ones((2, 2), np.float32))
    assert [n for n, _ in m.named_parameters()] == ["bias", "weight"]
    s = nn.Sequential(nn.ReLU())
    s.add_module("0", nn.Tanh())                     # replacing a child is allowed
    s.add_module("x", None)
    assert isinstance(s[0], nn.Tanh) and "x" in s._modules
    b = buffered()
    b.b = None
    assert list(b.state_dict()) == []


# ---- S5: one promotion rule, PyTorch's ----------------------------------------------------------
DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]
SCALARS = [True, 3, 2.5]
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
       "/": lambda a, b: a / b}


def operand(lib, dtype, zero_dim):
    values = np.array(1 if dtype == "bool" else 3).astype(dtype) if zero_dim else \
        np.array([1, 0, 1] if dtype == "bool" else [1, 2, 3]).astype(dtype)
    if lib == "tn":
        return tn.tensor(values)
    import torch
    return torch.tensor(values)


def outcome(call):
    try:
        with np.errstate(all="ignore"):
            out = call()
    except Exception:                 # noqa: BLE001 - a refusal is compared by its kind
        return "raises", None
    return str(out.dtype).removeprefix("torch."), np.asarray(out.tolist(), dtype=np.float64)


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("left", DTYPES)
def test_binary_op_result_dtypes_are_torchs(op, left):
    """Every pair of dtypes, as tensors with dimensions, 0-d tensors and Python scalars."""
    torch = pytest.importorskip("torch")
    f = OPS[op]
    rows = []
    for right in DTYPES:
        for zl, zr in ((False, False), (False, True), (True, False), (True, True)):
            rows.append((f"{left}{'0d' if zl else ''} {op} {right}{'0d' if zr else ''}",
                         lambda lib, r=right, zl=zl, zr=zr: f(operand(lib, left, zl),
                                                              operand(lib, r, zr))))
    for s in SCALARS:
        rows.append((f"{left} {op} {s!r}", lambda lib, s=s: f(operand(lib, left, False), s)))
        rows.append((f"{s!r} {op} {left}", lambda lib, s=s: f(s, operand(lib, left, False))))
    wrong = []
    for name, call in rows:
        got, want = outcome(lambda: call("tn")), outcome(lambda: call("torch"))
        if want[0] == "raises":
            continue                  # bool - bool: torch and NumPy both refuse
        if got[0] != want[0] or not np.allclose(got[1], want[1], rtol=1e-3,
                                                         equal_nan=True):
            wrong.append(f"{name}: tinynorm {got[0]}, torch {want[0]}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("first", DTYPES)
def test_cat_and_stack_promote_as_torch(first):
    torch = pytest.importorskip("torch")
    for second in DTYPES:
        for name in ("cat", "stack"):
            got = getattr(F, name)([operand("tn", first, False), operand("tn", second, False)])
            want = getattr(torch, name)([operand("torch", first, False),
                                         operand("torch", second, False)])
            assert str(got.dtype) == str(want.dtype).removeprefix("torch."), (name, first, second)


RIGHT_DTYPE = [
    # S5: the probe's cases (float64 in NumPy's promotion)
    ("int64 + 0.5", lambda: tn.tensor(np.array([1, 2])) + 0.5, "float32"),
    ("uint8 / 255", lambda: tn.tensor(np.array([1, 2], np.uint8)) / 255, "float32"),
    ("int64 / int64", lambda: tn.tensor(np.array([1, 2])) / tn.tensor(np.array([2, 2])), "float32"),
    ("float32 * int64 tensor", lambda: tn.ones(2) * tn.tensor(np.array([1, 2])), "float32"),
    ("cat(float32, int64)", lambda: F.cat([tn.ones(2), tn.tensor(np.array([1, 2]))]), "float32"),
    ("tensor(np.float64(1.5))", lambda: tn.tensor(np.float64(1.5)), "float64"),
    ("tensor([np.float64(1.5)])", lambda: tn.tensor([np.float64(1.5)]), "float64"),
    ("as_tensor(np.float64(1.5))", lambda: tn.as_tensor(np.float64(1.5)), "float64"),
    # past the listed cases
    ("tensor([1j])", lambda: tn.tensor([1j]), "complex64"),
    ("float32 + tensor(1.5, float64)", lambda: tn.ones(2) + tn.tensor(np.array(1.5)), "float32"),
    ("int32 * np.int64(2)", lambda: tn.tensor(np.array([1], np.int32)) * np.int64(2), "int32"),
    ("float32 ** np.float64(2)", lambda: tn.ones(2) ** np.float64(2), "float32"),
    ("int64 ** 0.5", lambda: tn.tensor(np.array([4])) ** 0.5, "float32"),
    ("int64.sqrt()", lambda: tn.tensor(np.array([4])).sqrt(), "float32"),
    ("int64.exp()", lambda: tn.tensor(np.array([1])).exp(), "float32"),
    ("F.sigmoid(int32)", lambda: F.sigmoid(tn.tensor(np.array([1], np.int32))), "float32"),
    ("bool.tanh()", lambda: tn.tensor(np.array([True])).tanh(), "float32"),
    ("bool * 2.5", lambda: tn.tensor(np.array([True])) * 2.5, "float32"),
    ("float32 + 1j", lambda: tn.ones(1) + 1j, "complex64"),
    ("int64 + 1j", lambda: tn.tensor(np.array([1])) + 1j, "complex64"),
    ("maximum(float32, int64)", lambda: tn.ones(2).maximum(tn.tensor(np.array([1, 2]))), "float32"),
    ("maximum(float32, 0-d float64)", lambda: F.maximum(tn.ones(2), tn.tensor(np.array(1.))),
     "float32"),
    ("float32 @ int64", lambda: tn.ones(2, 2) @ tn.tensor(np.ones((2, 2), np.int64)), "float32"),
    ("stack(0-d float32, 0-d int64)", lambda: F.stack([tn.tensor(1.), tn.tensor(1)]), "float32"),
]


@pytest.mark.parametrize("call, dtype", [r[1:] for r in RIGHT_DTYPE], ids=[r[0] for r in RIGHT_DTYPE])
def test_result_dtype_is_torchs(call, dtype):
    assert str(call().dtype) == dtype


KEPT_DTYPE = [
    ("tensor(np.int32(1))", lambda: tn.tensor(np.int32(1)), "int32"),
    ("tensor([np.float32(1.5), 1.0])", lambda: tn.tensor([np.float32(1.5), 1.0]), "float32"),
    ("tensor([])", lambda: tn.tensor([]), "float32"),
    ("int64 + tensor(1.5, float64)", lambda: tn.tensor(np.array([1, 2])) + tn.tensor(
        np.array(1.5)), "float64"),
    ("float32 * np.float64(2)", lambda: tn.ones(2) * np.float64(2), "float32"),
    ("float16 * np.float32(2)", lambda: tn.ones(2, dtype="float16") * np.float32(2), "float16"),
    ("int64 ** 2", lambda: tn.tensor(np.array([4])) ** 2, "int64"),
    ("float64 + 1j", lambda: tn.ones(1, dtype="float64") + 1j, "complex128"),
]


@pytest.mark.parametrize("call, dtype", [r[1:] for r in KEPT_DTYPE], ids=[r[0] for r in KEPT_DTYPE])
def test_result_dtype_the_rule_keeps(call, dtype):
    """Right before the rule too (NumPy agrees with torch here); kept as guards of the rule."""
    assert str(call().dtype) == dtype


def test_uint8_wraps_a_python_int_as_torch():
    assert (tn.tensor(np.array([1], np.uint8)) + 300).tolist() == [45]


def test_uint8_images_go_through_a_float32_conv():
    """The probe's consequence: uint8 images / 255 into a float32 conv (refused before)."""
    conv = nn.Conv2d(1, 2, 3)
    x = tn.tensor(np.arange(2 * 25, dtype=np.uint8).reshape(2, 1, 5, 5)) / 255
    assert conv(x).dtype == np.float32


def test_mixed_float_operands_give_each_its_gradient_in_its_dtype():
    a = tn.tensor(np.array([1., 2.], np.float32), requires_grad=True)
    b = tn.tensor(np.array([3., 4.]), requires_grad=True)           # float64
    c = tn.tensor(np.array(2.0), requires_grad=True)                # 0-d float64
    y = a * b + a * c                  # float64, then float32 (0-d float64 does not widen)
    assert (a * c).dtype == np.float32 and y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32 and np.allclose(a.grad.data, [5., 6.])
    assert b.grad.dtype == np.float64 and np.allclose(b.grad.data, [1., 2.])
    assert c.grad.dtype == np.float64 and np.allclose(c.grad.data, 3.)


# ---- S1: a cast computes a new value on the tape -------------------------------------------------
def leaf():
    return tn.tensor(np.array([1., 3., 2.], np.float32), requires_grad=True)


def grad_of(f):
    """d/da of sum(3a) + sum(2 f(a)): [5, 5, 5] when ``f`` passes the gradient on, as in torch."""
    a = leaf()
    ((a * 3).sum() + (f(a) * 2).sum()).backward()
    return a.grad.tolist() if a.grad is not None else None


CASTS = [
    ("astype(float64)", lambda a: a.astype(np.float64)),
    ("astype('float64')", lambda a: a.astype("float64")),
    ("to('cpu', float64)", lambda a: a.to("cpu", np.float64)),
    ("to(device='cpu', dtype=float64)", lambda a: a.to(device="cpu", dtype="float64")),
    ("as_tensor(a, dtype=float64)", lambda a: tn.as_tensor(a, dtype=np.float64)),
    ("astype(float64).astype(float32)", lambda a: a.astype(np.float64).astype(np.float32)),
]


@pytest.mark.parametrize("cast", [c[1] for c in CASTS], ids=[c[0] for c in CASTS])
def test_casts_are_on_the_tape(cast):
    assert grad_of(cast) == [5., 5., 5.]
    out = cast(leaf())
    assert not out.is_leaf and out.requires_grad


def test_integer_casts_have_no_gradient_as_torch():
    out = leaf().astype(np.int64)
    assert out.dtype == np.int64 and not out.requires_grad and out.is_leaf


def test_a_cast_under_no_grad_records_nothing():
    with tn.no_grad():
        out = leaf().astype(np.float64)
    assert out.is_leaf and not out.requires_grad


def test_max_of_a_0d_tensor_along_dim_is_a_new_tensor():
    a = tn.tensor(np.float32(2.0), requires_grad=True)
    values, index = a.max(0)
    assert values is not a and index.tolist() == 0
    (values * 3).backward()
    assert a.grad.tolist() == 3.0


# ---- R8: float16 through the kernel-backed ops ----------------------------------------------------
def test_relu_of_float16_is_computed_with_its_gradient():
    a = tn.tensor(np.array([-1., 2., 0.5], np.float16), requires_grad=True)
    y = F.relu(a)
    assert y.dtype == np.float16 and y.tolist() == [0., 2., 0.5]
    y.sum().backward()
    assert a.grad.dtype == np.float16 and a.grad.tolist() == [0., 1., 1.]


def test_adam_steps_a_float16_parameter_like_float32():
    out = {}
    for dtype in (np.float16, np.float32):
        p = nn.Parameter(np.ones(3, dtype))
        opt = optim.Adam([p], lr=0.1)
        p.grad = tn.tensor(np.array([1., -1., 0.5], dtype))
        opt.step()
        out[dtype] = p.data.astype(np.float64)
    assert np.allclose(out[np.float16], out[np.float32], atol=1e-3)   # 1 -/+ lr


# ---- S2: what stays allowed --------------------------------------------------------------------
def test_inplace_writes_that_stay_allowed_give_torchs_gradients():
    x = tn.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    s = tn.tensor(np.full((2, 3), 3., np.float32), requires_grad=True)
    y = x * 2
    y.copy_(s)                          # the non-leaf itself, twice
    y.copy_(s * 2)
    (y * 1).sum().backward()
    assert s.grad.tolist() == [[2.] * 3] * 2 and x.grad is None
    with tn.no_grad():                  # no gradient recorded: a view may be written
        z = x * 2
        z[0].zero_()
    assert z.tolist() == [[0.] * 3, [2.] * 3]
    w = tn.zeros(2, 3)
    w[0].copy_(tn.ones(3))              # no graph anywhere
    assert w.tolist() == [[1.] * 3, [0.] * 3]
    v = (x * 2)[0] * 1                  # a computed value, not a view
    v.zero_()
    assert v.tolist() == [0.] * 3


# ---- past S1: a loss's target (and soft cross-entropy's weight) get torch's gradient -------------
LOSSES = [
    ("binary_cross_entropy", lambda i, t, w: F.binary_cross_entropy(i, t),
     [[0.21182, -0.21182], [-0.10137, 0.10137]], None),
    ("binary_cross_entropy_with_logits", lambda i, t, w: F.binary_cross_entropy_with_logits(i, t),
     [[-0.075, -0.175], [-0.15, -0.1]], None),
    ("cross_entropy(probabilities)", lambda i, t, w: F.cross_entropy(i, t),
     [[0.45651, 0.25651], [0.29907, 0.39907]], None),
    ("cross_entropy(probabilities, weight, label_smoothing)", lambda i, t, w: F.cross_entropy(
        i, t, weight=w, label_smoothing=0.1), [[0.20543, 0.46171], [0.13458, 0.71832]],
     [0.25453, 0.39705]),
]


@pytest.mark.parametrize("loss, target_grad, weight_grad", [r[1:] for r in LOSSES],
                         ids=[r[0] for r in LOSSES])
def test_loss_target_gradient_is_torchs(loss, target_grad, weight_grad):
    """Values from torch 2.13 (the same calls with requires_grad on every argument)."""
    i, t, w = req(P), req(Q), req(W2)
    loss(i, t, w).backward()
    assert np.allclose(t.grad.data, target_grad, atol=1e-5)
    if weight_grad is None:
        assert w.grad is None
    else:
        assert np.allclose(w.grad.data, weight_grad, atol=1e-5)
