"""tinynorm.testing: gradcheck and check_op must catch wrong ops (reporting shape and worst element),
the strategies draw what they say, and ``tinynorm gradcheck`` prints its table and exit codes."""
import numpy as np
import pytest
from hypothesis import given, settings

import tinynorm as tn
from tinynorm.autograd import Function
from tinynorm.testing import arrays, gradcheck, shapes


class _WrongSquare(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, g):
        return g * self.saved[0]


def test_gradcheck_catches_a_wrong_backward():
    x = np.random.default_rng(0).standard_normal((3, 2))
    with pytest.raises(AssertionError, match="gradcheck failed for input 0"):
        gradcheck(lambda t: _WrongSquare.apply(t), [x])
    assert gradcheck(lambda t: t * t, [x])


@settings(max_examples=20, deadline=None)
@given(arrays(shapes(1, 3, 1, 4), np.float32, low=-3, high=3))
def test_arrays_strategy_draws_finite_values_in_range(a):
    assert a.dtype == np.float32 and 1 <= a.ndim <= 3
    assert np.all(np.isfinite(a)) and np.all(np.abs(a) <= 3)


def test_enable_grad_inside_no_grad():
    x = tn.tensor(np.ones(2), requires_grad=True)
    with tn.no_grad():
        with tn.enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.requires_grad and not z.requires_grad


# ---- check_op -------------------------------------------------------------------------

from hypothesis import strategies as st  # noqa: E402

from tinynorm import functional as F  # noqa: E402
from tinynorm.testing import (CheckFailure, check_op, constant_slices, hard_arrays,  # noqa: E402
                              normal_arrays, offset_arrays, scaled_arrays, with_nonfinite)


class _WrongScaleBackward(Function):
    """y = 3 x; backward returns 3 g except at flat index 2, where it returns 2 g."""

    def forward(self, x):
        return 3.0 * x

    def backward(self, g):
        d = 3.0 * g
        if d.size > 2:
            d.reshape(-1)[2] = 2.0 * g.reshape(-1)[2]
        return d


def test_check_op_reports_the_smallest_case_and_worst_element_of_a_wrong_backward():
    shapes_st = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)
    with pytest.raises(CheckFailure) as info:
        check_op(lambda x: _WrongScaleBackward.apply(x), lambda x: 3.0 * x,
                 inputs=st.tuples(normal_arrays(shapes_st)), max_examples=30, seed=1)
    e = info.value
    assert e.check == "gradient against finite differences" and e.which == 0
    assert int(np.prod(e.shape)) == 3, e.shape      # shrunk to the fewest elements that fail
    assert np.ravel_multi_index(e.index, e.shape) == 2
    assert e.got == pytest.approx(2 / 3 * e.expected, rel=1e-6)
    msg = str(e)
    assert f"shape {e.shape}" in msg and f"index {e.index}" in msg
    assert f"got {e.got!r}" in msg and "smallest failing case" in msg


def test_check_op_catches_a_wrong_forward_and_a_nan_that_is_zeroed():
    x_st = st.tuples(normal_arrays((2, 3)))
    with pytest.raises(CheckFailure, match="forward against the oracle"):
        check_op(lambda x: x * 2.0, lambda x: x * 2.0 + 1e-3, inputs=x_st, max_examples=3)

    def zeroing_tanh(x):
        y = F.tanh(x)
        y.data[np.isnan(y.data)] = 0.0
        return y
    with pytest.raises(CheckFailure) as info:
        check_op(zeroing_tanh, np.tanh, inputs=st.tuples(with_nonfinite(normal_arrays((2, 3)))),
                 max_examples=5)
    assert np.isnan(info.value.expected) and info.value.got == 0.0


def test_check_op_passes_a_real_norm_and_reports_each_dtype():
    def oracle(x):
        m = x.mean(axis=1, keepdims=True)
        return (x - m) / np.sqrt(((x - m) ** 2).mean(axis=1, keepdims=True) + 1e-5)
    report = check_op(lambda x: F.layer_norm(x, (x.shape[1],)), oracle,
                      inputs=st.tuples(hard_arrays((3, 4), axes=(1,), nonfinite=True)),
                      max_examples=25, seed=0)
    assert report.cases >= 25 and report.nonfinite_cases > 0
    assert [(r["dtype"], r["device"]) for r in report.rows.values()] == [("float32", "cpu"),
                                                                         ("float64", "cpu")]
    for r in report.rows.values():
        assert r["cases"] == report.cases and r["forward_error"] <= 1e-4
    assert "float32" in str(report) and "grad err" in str(report)


def test_check_op_float32_against_float64_catches_a_float32_only_bug():
    def sloppy(x):
        return x * (1.001 if x.dtype == np.float32 else 1.0)
    with pytest.raises(CheckFailure) as info:
        check_op(sloppy, lambda x: x, inputs=st.tuples(normal_arrays((3,))), max_examples=3)
    assert info.value.dtype == np.float32


@settings(max_examples=20, deadline=None)
@given(constant_slices((3, 2, 4), axes=(0, 2)), offset_arrays((50,)), scaled_arrays((50,)),
       with_nonfinite(normal_arrays((4, 4))))
def test_hard_strategies_draw_what_they_say(c, off, sc, nf):
    assert np.any(np.ptp(c, axis=(0, 2)) == 0)
    assert abs(off.mean()) >= 50 * off.std()
    s = np.abs(sc).max()
    assert s < 1e-2 or s > 1e2
    assert 1 <= np.sum(~np.isfinite(nf)) <= 2


# ---- tinynorm gradcheck ---------------------------------------------------------------

def test_gradcheck_cli_table_and_errors(capsys):
    from tinynorm.cli import main
    assert main(["gradcheck", "rms_norm", "linear", "--max-examples", "3"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-3 if "compiling" in out else 0].split()[:3] == ["op", "dtype", "device"] \
        or "fwd err" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("rms_norm", "linear"))]
    assert [(r[0], r[1], r[2], r[3], r[-1]) for r in rows] == [
        ("rms_norm", "float32", "cpu", "3", "ok"), ("rms_norm", "float64", "cpu", "3", "ok"),
        ("linear", "float32", "cpu", "3", "ok"), ("linear", "float64", "cpu", "3", "ok")]
    assert "2 of 2 ops passed" in out
    assert main(["gradcheck", "rmsnorm"]) == 2
    err = capsys.readouterr().err
    assert "unknown op 'rmsnorm'" in err and "rms_norm" in err and "batch_norm" in err
    assert main(["gradcheck", "--list"]) == 0
    assert "frn_tlu" in capsys.readouterr().out


def test_gradcheck_cli_exit_code_is_nonzero_when_an_op_fails(monkeypatch, capsys):
    from tinynorm.cli import main
    from tinynorm.testing import builtin_ops
    op = builtin_ops.BUILTIN_OPS["linear"]
    monkeypatch.setattr(op, "oracle", lambda x, w, b: builtin_ops.O.linear(x, w, b) * 1.01)
    assert main(["gradcheck", "linear", "--max-examples", "3"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: forward against the oracle" in out and "worst element" in out
