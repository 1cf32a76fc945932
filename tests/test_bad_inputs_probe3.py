"""Bad inputs left open by issue 12 after two probes, one row each (exception type and a phrase
of the message), and the legal calls next to them checked against torch or by hand."""
import contextlib
import io
import operator

import numpy as np
import pytest

import tinynorm as tn
from tinynorm import functional as F
from tinynorm import nn, optim
from tinynorm.cli import main

from bad_input_tables import names_once_test, raises_test


class CLIError(Exception):
    """What ``tinynorm train`` printed on stderr when it refused its arguments."""


def cli(*argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["train", "--epochs", "1", *argv])
        except SystemExit as e:
            code = e.code
    if code:
        raise CLIError(err.getvalue())


def x(*shape, dtype=np.float32):
    return tn.tensor(np.arange(np.prod(shape), dtype=dtype).reshape(shape) / 7)


def with_grad(value, shape=(2, 3)):
    t = x(*shape)
    t.grad = value


def stepped(opt_cls, **kw):
    lin = nn.Linear(2, 2)
    opt = opt_cls(lin.parameters(), **kw)
    lin(tn.ones(1, 2)).sum().backward()
    opt.step()
    return lin, opt


def load_other(src_cls, dst_cls, only_state=False, **kw):
    lin, src = stepped(src_cls, **kw)
    sd = src.state_dict()
    dst_cls(lin.parameters(), lr=0.1).load_state_dict({"state": sd["state"]} if only_state else sd)


BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "@": operator.matmul}
NON_NUMERIC = {"None": None, "str": "a", "object": object(), "list of str": ["a", "b"],
               "list of None": [None, None], "ragged list": [[1.0], [1.0, 2.0]],
               "array of str": np.array(["a", "b"])}
OPERANDS = [(f"x {sym} {name}", (lambda f, v: lambda: f(x(2, 2), v))(f, v), TypeError,
             "unsupported operand type(s) for")
            for sym, f in BINARY.items() for name, v in NON_NUMERIC.items()]
# A str or list on the left refuses first, with Python's own message (can only concatenate...).
OPERANDS += [(f"{name} {sym} x", (lambda f, v: lambda: f(v, x(2, 2)))(f, v), TypeError,
              f"unsupported operand type(s) for {sym}: '{type(v).__name__}' and 'Tensor'")
             for sym, f in BINARY.items() for name, v in NON_NUMERIC.items()
             if not isinstance(v, (np.ndarray, str, list))]
OPERANDS += [(f"x {sym} None", (lambda f: lambda: f(x(2, 2), None))(f), TypeError,
              f"'{sym}' not supported between instances of 'Tensor' and 'NoneType'")
             for sym, f in {"<": operator.lt, "<=": operator.le, ">": operator.gt,
                            ">=": operator.ge}.items()]
OPERANDS += [
    ("int tensor + None", lambda: tn.tensor([1, 2]) + None, TypeError, "'Tensor' and 'NoneType'"),
    ("x < 'a'", lambda: x(2) < "a", TypeError, "'<' not supported"),
    ("x ** None", lambda: x(2) ** None, TypeError, "unsupported operand type(s) for ** or pow()"),
    ("x ** 'a'", lambda: x(2) ** "a", TypeError, "unsupported operand type(s) for ** or pow()"),
    ("x.maximum(None)", lambda: x(2).maximum(None), TypeError, "maximum(): argument 'other'"),
    ("x.copy_(None)", lambda: x(2).copy_(None), TypeError, "copy_(): argument 'other'"),
    ("x.copy_('ab')", lambda: x(2).copy_("ab"), TypeError, "not str"),
]

MODULES = {"Linear": lambda d: nn.Linear(2, 2, dtype=d), "Conv2d": lambda d: nn.Conv2d(2, 2, 1, dtype=d),
           "BatchNorm2d": lambda d: nn.BatchNorm2d(3, dtype=d),
           "BatchRenorm1d": lambda d: nn.BatchRenorm1d(3, dtype=d),
           "CrossMiniBatchNorm": lambda d: nn.CrossMiniBatchNorm(3, dtype=d),
           "GroupNorm": lambda d: nn.GroupNorm(1, 3, dtype=d), "LayerNorm": lambda d: nn.LayerNorm(3, dtype=d),
           "InstanceNorm2d": lambda d: nn.InstanceNorm2d(3, dtype=d),
           "FilterResponseNorm2d": lambda d: nn.FilterResponseNorm2d(3, dtype=d),
           "TLU": lambda d: nn.TLU(3, dtype=d), "RMSNorm": lambda d: nn.RMSNorm(3, dtype=d),
           "LSTM": lambda d: nn.LSTM(2, 2, dtype=d), "BNLSTM": lambda d: nn.BNLSTM(2, 2, 3, dtype=d),
           "LNLSTM": lambda d: nn.LNLSTM(2, 2, dtype=d), "Module.to": lambda d: nn.Linear(2, 2).to(dtype=d)}
MODULE_DTYPES = [(f"{name}(dtype={d!r})", (lambda f, d: lambda: f(d))(f, d), exc, f"{name}: {phrase}")
                 for name, f in MODULES.items()
                 for d, exc, phrase in (("nope", TypeError, "dtype must be one of bool"),
                                        ("int64", ValueError, "dtype: unsupported dtype int64"),
                                        (np.float16, ValueError, "dtype: unsupported dtype float16"))
                 if (name, d) != ("Module.to", "int64")]  # torch's TypeError: test_bad_inputs_probe4

BAD = OPERANDS + MODULE_DTYPES + [
    # Tensor() and 0-d tensors
    ("Tensor(2.5)", lambda: tn.Tensor(2.5), TypeError, "data must be a sequence of numbers or an int"),
    ("Tensor(True)", lambda: tn.Tensor(True), TypeError, "got bool"),
    ("Tensor(None)", lambda: tn.Tensor(None), TypeError, "got NoneType"),
    ("Tensor(-1)", lambda: tn.Tensor(-1), ValueError, "Tensor: size must be an integer >= 0"),
    ("Tensor(['a'])", lambda: tn.Tensor(["a"]), TypeError, "holding <U1"),
    ("list(0-d tensor)", lambda: list(tn.tensor(1.0)), TypeError, "iteration over a 0-d tensor"),
    ("len(0-d tensor)", lambda: len(tn.tensor(1.0)), TypeError, "len() of a 0-d tensor"),
    # .grad and requires_grad
    ("grad of another shape", lambda: with_grad(x(3, 2)), RuntimeError,
     "assigned grad has data of a different size"),
    ("grad of another dtype", lambda: with_grad(x(2, 3, dtype=np.float64)), RuntimeError,
     "assigned grad has data of a different type"),
    ("grad an ndarray", lambda: with_grad(np.zeros((2, 3), np.float32)), TypeError,
     "assigned grad expected to be a Tensor or None but got grad of type ndarray"),
    ("grad an int", lambda: with_grad(0), TypeError, "got grad of type int"),
    ("requires_grad = 3", lambda: setattr(x(2), "requires_grad", 3), RuntimeError,
     "requires_grad must be a bool"),
    ("requires_grad_('no')", lambda: x(2).requires_grad_("no"), RuntimeError,
     "requires_grad must be a bool"),
    ("Tensor(3, 3)", lambda: tn.Tensor(3, 3), TypeError, "tinynorm's Tensor takes one size"),
    ("bool of 2 values", lambda: bool(x(2)), RuntimeError,
     "Boolean value of Tensor with more than one value is ambiguous"),
    ("bool of no values", lambda: bool(x(0)), RuntimeError, "Boolean value of Tensor with no values"),
    ("float of 2 values", lambda: float(x(2)), ValueError, "only one element tensors can be converted"),
    ("int of 2 values", lambda: int(x(2)), ValueError, "only one element tensors can be converted"),
    ("item of 2 values", lambda: x(2).item(), RuntimeError, "a Tensor with 2 elements cannot be converted"),
    ("sum(keepdim='a')", lambda: x(2, 2).sum(0, keepdim="a"), TypeError, "sum: keepdim must be a bool"),
    ("mean(keepdim=None)", lambda: x(2, 2).mean(0, keepdim=None), TypeError, "mean: keepdim must be a bool"),
    ("cat of 0-d tensors", lambda: F.cat([tn.tensor(1.0), tn.tensor(2.0)]), RuntimeError,
     "zero-dimensional tensor (at position 0) cannot be concatenated"),
    # modules, functional, optimizers
    ("Module.train('no')", lambda: nn.Linear(2, 2).train("no"), ValueError,
     "training mode is expected to be boolean"),
    ("Module.train(1)", lambda: nn.Linear(2, 2).train(1), ValueError, "expected to be boolean"),
    ("Module.train(None)", lambda: nn.Sequential(nn.Linear(2, 2)).train(None), ValueError,
     "expected to be boolean"),
    ("eval batch_norm without running_mean", lambda: F.batch_norm(x(4, 3), None, None, training=False),
     RuntimeError, "running_mean must be defined in evaluation mode"),
    ("eval batch_norm without running_var", lambda: F.batch_norm(x(4, 3), tn.zeros(3), None),
     RuntimeError, "running_var must be defined in evaluation mode"),
    ("CrossEntropyLoss(ignore_index=1.5)", lambda: nn.CrossEntropyLoss(ignore_index=1.5), ValueError,
     "ignore_index must be an integer"),
    ("CrossEntropyLoss(ignore_index=None)", lambda: nn.CrossEntropyLoss(ignore_index=None), ValueError,
     "ignore_index must be an integer"),
    ("cross_entropy(ignore_index=1.5)", lambda: F.cross_entropy(x(2, 3), [0, 1], ignore_index=1.5),
     ValueError, "ignore_index must be an integer"),
    ("CrossEntropyLoss(reduction='avg')", lambda: nn.CrossEntropyLoss(reduction="avg"), ValueError,
     "reduction must be 'mean', 'sum' or 'none'"),
    ("CrossEntropyLoss(label_smoothing=2)", lambda: nn.CrossEntropyLoss(label_smoothing=2), ValueError,
     "label_smoothing must lie in [0.0, 1.0]"),
    ("Adam.load_state_dict(SGD's)", lambda: load_other(optim.SGD, optim.Adam, lr=0.1, momentum=0.9),
     ValueError, "the state comes from another optimizer"),
    ("SGD.load_state_dict(Adam's)", lambda: load_other(optim.Adam, optim.SGD), ValueError,
     "the state comes from another optimizer"),
    ("Adam.load_state_dict(SGD's state only)",
     lambda: load_other(optim.SGD, optim.Adam, True, lr=0.1, momentum=0.9), ValueError,
     "holds ['momentum_buffer'], Adam keeps ['exp_avg', 'exp_avg_sq', 'step']"),
    ("optimizer state key 'a'", lambda: optim.Adam(nn.Linear(2, 2).parameters()).load_state_dict(
        {"state": {"a": {}}}), ValueError, "state key 'a' is not a parameter index"),
    ("optimizer state step 'x'", lambda: optim.Adam(nn.Linear(2, 2).parameters()).load_state_dict(
        {"state": {0: {"step": "x", "exp_avg": np.zeros((2, 2)), "exp_avg_sq": np.zeros((2, 2))}}}),
     ValueError, "state 0.step must be a finite number >= 0"),
    ("optimizer state moments of str", lambda: optim.Adam(nn.Linear(2, 2).parameters()).load_state_dict(
        {"state": {0: {"step": 1, "exp_avg": [["a", "b"]] * 2, "exp_avg_sq": np.zeros((2, 2))}}}),
     ValueError, "state 0.exp_avg must hold numbers"),
    ("backward('a')", lambda: (x(3).requires_grad_() * 2).backward("a"), TypeError,
     "backward: gradient must be a Tensor or an array of real numbers, got str"),
    ("backward(object())", lambda: (x(3).requires_grad_() * 2).backward(object()), TypeError,
     "gradient must be a Tensor or an array of real numbers, got object"),
    ("backward([None] * 3)", lambda: (x(3).requires_grad_() * 2).backward([None] * 3), TypeError,
     "gradient must be a Tensor or an array of real numbers, got list"),
    # one dim helper
    ("stack(dim=-4) of 2-d", lambda: F.stack([x(2, 2), x(2, 2)], dim=-4), IndexError,
     "Dimension out of range (expected to be in range of [-3, 2], but got -4)"),
    ("stack(dim=3) of 2-d", lambda: F.stack([x(2, 2)], dim=3), IndexError, "but got 3"),
    ("stack(dim=1.0)", lambda: F.stack([x(2, 2)], dim=1.0), TypeError, "stack: dim must be an int"),
    ("cat(dim=2) of 2-d", lambda: F.cat([x(2, 2)], dim=2), IndexError, "[-2, 1], but got 2"),
    ("cat(dim='0')", lambda: F.cat([x(2, 2)], dim="0"), TypeError, "cat: dim must be an int"),
    ("sum(dim=2)", lambda: x(2, 2).sum(dim=2), IndexError, "sum: Dimension out of range"),
    ("sum(dim=(0, -2))", lambda: x(2, 2).sum(dim=(0, -2)), RuntimeError, "dim 0 appears multiple times"),
    ("sum(dim=True)", lambda: x(2, 2).sum(dim=True), TypeError, "dim must be an int, got bool"),
    ("mean(dim=-3)", lambda: x(2, 2).mean(dim=-3), IndexError, "mean: Dimension out of range"),
    ("mean(dim=[0, 1.5])", lambda: x(2, 2).mean(dim=[0, 1.5]), TypeError, "dim must be an int"),
    ("softmax(dim=2)", lambda: F.softmax(x(2, 2), dim=2), IndexError, "[-2, 1], but got 2"),
    ("log_softmax(0-d, dim=1)", lambda: F.log_softmax(tn.tensor(1.0), dim=1), IndexError,
     "[-1, 0], but got 1"),
    ("transpose(0, 2)", lambda: x(2, 2).transpose(0, 2), IndexError, "transpose: Dimension out of range"),
    ("transpose(0, 0.5)", lambda: x(2, 2).transpose(0, 0.5), TypeError, "dim must be an int"),
    ("permute(0, 2)", lambda: x(2, 2).permute(0, 2), IndexError, "permute: Dimension out of range"),
    ("permute(0)", lambda: x(2, 2).permute(0), RuntimeError, "number of dims don't match"),
    ("flatten(0, 5)", lambda: x(2, 2).flatten(0, 5), IndexError, "flatten: Dimension out of range"),
    ("nn.Flatten(3)", lambda: nn.Flatten(3)(x(2, 2)), IndexError, "flatten: Dimension out of range"),
    ("size(2)", lambda: x(2, 2).size(2), IndexError, "size: Dimension out of range"),
    ("argmax(-3)", lambda: x(2, 2).argmax(-3), IndexError, "argmax: Dimension out of range"),
    ("max(dim=2.0)", lambda: x(2, 2).max(2.0), TypeError, "max: dim must be an int"),
    ("weight_norm(dim=2)", lambda: nn.utils.weight_norm(nn.Linear(3, 2), dim=2), IndexError,
     "Dimension out of range"),
    # one dtype parser
    ("ones(dtype='nope')", lambda: tn.ones(2, dtype="nope"), TypeError,
     "ones: dtype must be one of bool, uint8, int8, int16, int32, int64, float16, float32, float64"),
    ("zeros(dtype=object)", lambda: tn.zeros(2, dtype=object), TypeError, "zeros: dtype must be one of"),
    ("zeros(dtype=str)", lambda: tn.zeros(2, dtype=str), TypeError, "zeros: dtype must be one of"),
    ("tensor(dtype='U')", lambda: tn.tensor([1], dtype="U"), TypeError, "tensor: dtype must be one of"),
    ("tensor(dtype='datetime64')", lambda: tn.tensor([1], dtype="datetime64"), TypeError,
     "tensor: dtype must be one of"),
    ("as_tensor(dtype='nope')", lambda: tn.as_tensor([1.0], dtype="nope"), TypeError,
     "as_tensor: dtype must be one of"),
    ("astype('nope')", lambda: x(2).astype("nope"), TypeError, "astype: dtype must be one of"),
    ("to(dtype='nope')", lambda: x(2).to(dtype="nope"), TypeError, "to: dtype must be one of"),
    ("to(dtype=[1])", lambda: x(2).to(dtype=[1]), TypeError, "to: dtype must be one of"),
    ("log_softmax(dtype='nope')", lambda: F.log_softmax(x(2), dtype="nope"), TypeError,
     "log_softmax: dtype must be one of"),
    # train flags a run would ignore
    ("--norm ln --groups 4", lambda: cli("--norm", "ln", "--groups", "4"), CLIError,
     "--groups is read only with --norm gn"),
    ("--norm bn --window 3", lambda: cli("--norm", "bn", "--window", "3"), CLIError,
     "--window is read only with --norm cbn"),
    ("--norm gn --burn-in 3", lambda: cli("--norm", "gn", "--burn-in", "3"), CLIError,
     "--burn-in is read only with --norm cbn"),
    ("--norm bn --renorm-warmup 3", lambda: cli("--norm", "bn", "--renorm-warmup", "3"), CLIError,
     "--renorm-warmup is read only with --norm brn"),
    ("--norm ln --bn-stats population", lambda: cli("--norm", "ln", "--bn-stats", "population"),
     CLIError, "--bn-stats is read only with --norm bn, cbn or cmbn"),
    ("--timeout 5 on one process", lambda: cli("--timeout", "5"), CLIError,
     "--timeout is read only with --workers N > 1"),
    ("--model mlp --pixels", lambda: cli("--model", "mlp", "--pixels"), CLIError,
     "--pixels reads --model lstm's sequences"),
    ("--norm none --placement before", lambda: cli("--norm", "none", "--placement", "before"),
     CLIError, "--placement does not apply to --norm none: there is no norm to place"),
]


test_bad_input = raises_test(BAD)
test_the_table_names_each_case_once = names_once_test(BAD, at_least=160)


def test_tensor_of_an_int_is_that_many_zeros_as_torch_shapes_it():
    t = tn.Tensor(3)
    assert t.shape == (3,) and t.dtype == np.float32 and not t.data.any()
    assert tn.Tensor(0).shape == (0,)
    np.testing.assert_array_equal(tn.Tensor([3]).data, np.array([3.0], np.float32))
    torch = pytest.importorskip("torch")
    assert tuple(torch.Tensor(3).shape) == t.shape


def test_iteration_and_comparison_with_none_as_torch():
    rows = list(x(2, 3))
    assert [r.shape for r in rows] == [(3,), (3,)]
    np.testing.assert_array_equal(rows[1].data, x(2, 3).data[1])
    assert [float(v.item()) for v in tn.tensor([1.0, 2.0])] == [1.0, 2.0]
    assert (x(2) == None) is False and (x(2) != None) is True  # noqa: E711
    torch = pytest.importorskip("torch")
    assert (torch.tensor([1.0]) == None) is False  # noqa: E711


def test_scalars_sums_over_no_dims_and_complex_operands_as_torch():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert float(tn.tensor(2.5)) == 2.5 and int(tn.tensor([2.7])) == 2 and bool(tn.tensor([1.0]))
    assert float(x(2, 2).sum(dim=())) == pytest.approx(x(2, 2).data.sum())
    np.testing.assert_allclose(tn.tensor(a).mean(dim=[]).data, a.mean())
    np.testing.assert_allclose((tn.tensor(a) + 1j).data, a + 1j)
    assert tn.ones(2, dtype=None).dtype == np.float32 and tn.tensor(a).to(np.float64).dtype == np.float64
    torch = pytest.importorskip("torch")
    assert float(torch.tensor(a).sum(dim=())) == float(tn.tensor(a).sum(dim=()).item())
    np.testing.assert_allclose((tn.tensor(a) + 1j).data, (torch.tensor(a) + 1j).numpy())


def test_numeric_operands_still_work():
    a = x(2, 2)
    for other in (2, 2.5, True, np.float64(2), np.array([1.0, 2.0]), [1.0, 2.0], [[1, 2], [3, 4]]):
        np.testing.assert_allclose((a + other).data, a.data + np.asarray(other, np.float32))
        np.testing.assert_allclose((other - a).data, np.asarray(other, np.float32) - a.data)
    np.testing.assert_array_equal((a < 0.3).data, a.data < 0.3)
    np.testing.assert_allclose((a ** np.float32(2)).data, a.data ** 2)
    y = tn.zeros(2)
    y.copy_([1.0, 2.0])
    np.testing.assert_array_equal(y.data, [1.0, 2.0])


def test_assigned_grad_of_the_right_kind_is_kept():
    t = x(2, 3)
    g = tn.ones(2, 3)
    t.grad = g
    assert t.grad is g
    t.grad = None
    assert t.grad is None


@pytest.mark.parametrize("dim", [-3, -2, -1, 0, 1, 2])
def test_stack_takes_every_dim_torch_takes(dim):
    a, b = np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32)
    np.testing.assert_array_equal(F.stack([tn.tensor(a), tn.tensor(b)], dim=dim).data,
                                  np.stack([a, b], axis=dim))


@pytest.mark.parametrize("call, expect", [
    (lambda t: t.sum(dim=-1), lambda a: a.sum(axis=-1)),
    (lambda t: t.mean(dim=(-1, 0)), lambda a: a.mean(axis=(0, 1))),
    (lambda t: t.transpose(-1, -2), lambda a: a.T),
    (lambda t: t.permute(-1, 0), lambda a: a.T),
    (lambda t: F.cat([t, t], dim=-1), lambda a: np.concatenate([a, a], axis=-1)),
    (lambda t: t.flatten(-2, -1), lambda a: a.reshape(-1)),
    (lambda t: tn.tensor(1.0).sum(dim=-1), lambda a: np.float32(1.0)),
])
def test_negative_dims_mean_what_torch_means(call, expect):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(call(tn.tensor(a)).data, expect(a), rtol=1e-6)


def test_dtype_names_types_and_torch_dtypes_are_accepted():
    assert tn.ones(2, dtype="float64").dtype == np.float64
    assert tn.zeros(2, dtype=int).dtype == np.int64
    assert tn.tensor([1, 2], dtype=np.float32).dtype == np.float32
    assert x(2).to(dtype=">f8").dtype == np.float64
    assert x(2).astype(bool).dtype == np.bool_
    torch = pytest.importorskip("torch")
    assert tn.tensor([1.0], dtype=torch.float64).dtype == np.float64
    assert tn.ones(1, dtype=torch.int32).dtype == np.int32


def test_eval_batch_norm_with_statistics_and_training_without_them_still_work():
    a = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    y = F.batch_norm(tn.tensor(a), tn.zeros(3), tn.ones(3), eps=0.0)
    np.testing.assert_allclose(y.data, a, rtol=1e-6)
    y = F.batch_norm(tn.tensor(a), None, None, training=True, eps=0.0)
    np.testing.assert_allclose(y.data, (a - a.mean(0)) / a.std(0), rtol=1e-4, atol=1e-5)


def test_optimizer_state_of_its_own_kind_still_loads():
    lin, adam = stepped(optim.Adam)
    other = optim.Adam(lin.parameters())
    other.load_state_dict(adam.state_dict())
    np.testing.assert_array_equal(other.state[lin.weight]["exp_avg"], adam.state[lin.weight]["exp_avg"])
    lin, sgd = stepped(optim.SGD, lr=0.1, momentum=0.9)
    optim.SGD(lin.parameters(), lr=0.1).load_state_dict({"state": sgd.state_dict()["state"]})


def test_cmbn_keeps_no_statistics_of_a_mini_batch_it_refused():
    m = nn.CrossMiniBatchNorm(3, subdivisions=2)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        m(tn.ones(1, 3))
    a = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    y = m(tn.tensor(a))
    np.testing.assert_allclose(y.data, (a - a.mean(0)) / np.sqrt(a.var(0) + m.eps), rtol=1e-4,
                               atol=1e-5)
