"""Probe 3's data, checkpoint, loss, optimizer and CLI findings (S4, S6-S8, R1-R4, R7), one row
each: a refused input (exception type and a phrase of the message), a CLI run (exit code, the
message, no traceback) or a right answer checked against torch when it is installed."""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import tinynorm as tn
from tinynorm import functional as F
from tinynorm import nn, optim

try:
    import torch
except ImportError:  # parity rows are skipped, the rest run
    torch = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((5, 4)).astype(np.float32)
ZERO_W0 = np.array([0, 1, 1, 1], np.float32)


# ---- right answers -------------------------------------------------------------------------

def loss_grad(lib, name, target, weight=None, **kw):
    """Gradient of ``name`` (cross_entropy/nll_loss, mean) w.r.t. LOGITS in tinynorm or torch."""
    if lib == "torch":
        x = torch.tensor(LOGITS, requires_grad=True)
        w = None if weight is None else torch.tensor(weight)
        out = getattr(torch.nn.functional, name)(x, torch.tensor(target), weight=w, **kw)
        out.backward()
        return float(out.detach()), x.grad.numpy()
    x = tn.tensor(LOGITS.copy(), requires_grad=True)
    out = getattr(F, name)(x, tn.tensor(target), weight=None if weight is None else tn.tensor(weight), **kw)
    out.backward()
    return float(out.data), x.grad.data


IGNORED = np.full(5, -100)
MIXED = np.array([0, -100, 0, -100, 0])
# (id, function name, target, class weight, kwargs, expected grad: "zero" or None = torch's)
LOSSES = [
    ("S4 cross_entropy every target ignored", "cross_entropy", IGNORED, None, {}, "zero"),
    ("S4 cross_entropy every target ignored, smoothing", "cross_entropy", IGNORED, None,
     {"label_smoothing": 0.1}, "zero"),
    ("S4 cross_entropy every target ignored, weighted", "cross_entropy", IGNORED, ZERO_W0, {}, "zero"),
    ("S4 nll_loss every target ignored", "nll_loss", IGNORED, None, {}, "zero"),
    ("S4 nll_loss every target ignored, weighted", "nll_loss", IGNORED, ZERO_W0, {}, "zero"),
    ("S4 cross_entropy ignored rows next to weight-0 rows", "cross_entropy", MIXED, ZERO_W0, {}, None),
    ("S4 nll_loss ignored rows next to weight-0 rows", "nll_loss", MIXED, ZERO_W0, {}, None),
]


@pytest.mark.parametrize("name, target, weight, kw, expect", [r[1:] for r in LOSSES],
                         ids=[r[0] for r in LOSSES])
def test_mean_loss_over_no_weight(name, target, weight, kw, expect):
    loss, grad = loss_grad("tinynorm", name, target, weight, **kw)
    assert np.isnan(loss)  # the mean of nothing, as in torch
    if expect == "zero":
        np.testing.assert_array_equal(grad, np.zeros_like(grad))
    if torch is not None:
        _, want = loss_grad("torch", name, target, weight, **kw)
        np.testing.assert_array_equal(np.isnan(grad), np.isnan(want))
        np.testing.assert_allclose(np.nan_to_num(grad), np.nan_to_num(want), atol=1e-6)
    elif expect is None:
        pytest.skip("torch is not installed")


def test_an_all_padding_batch_leaves_the_parameters_finite():
    lin = nn.Linear(3, 4)
    opt = optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    F.cross_entropy(lin(tn.ones(2, 3)), tn.tensor(np.full(2, -100))).backward()
    opt.step()
    assert all(np.isfinite(p.data).all() for p in lin.parameters())


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_counted_samples_of_class_weight_0_keep_torchs_nan(name):
    """Not a finding (passes before the fix): the zero-gradient rule above must not hide these."""
    _, grad = loss_grad("tinynorm", name, np.zeros(5, int), ZERO_W0)
    _, want = loss_grad("torch", name, np.zeros(5, int), ZERO_W0)
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(want))


# ---- R3: every CPU kernel divides as NumPy does -------------------------------------------

@pytest.mark.parametrize("opt_cls, dtype", [(optim.Adam, np.float32), (optim.Adam, np.float64),
                                            (optim.AdamW, np.float32)],
                         ids=["R3 Adam eps=0 zero grad", "R3 Adam eps=0 float64",
                              "R3 AdamW eps=0 zero grad"])
def test_adam_with_eps_0_and_a_zero_gradient_gives_nan_as_torch(opt_cls, dtype):
    p = nn.Parameter(tn.tensor(np.ones(3, dtype)))
    p.grad = tn.tensor(np.zeros(3, dtype))
    opt_cls([p], lr=0.1, eps=0).step()  # was ZeroDivisionError from inside the Numba kernel
    assert np.isnan(p.data).all()


def test_every_cpu_kernel_is_compiled_with_numpys_error_model():
    import importlib
    import pkgutil

    from numba.core.registry import CPUDispatcher

    import tinynorm.kernels.cpu as cpu
    seen = []
    for info in pkgutil.iter_modules(cpu.__path__):
        mod = importlib.import_module(f"{cpu.__name__}.{info.name}")
        for name, obj in vars(mod).items():
            if isinstance(obj, CPUDispatcher) and obj.__module__ == mod.__name__:
                seen.append(name)
                assert obj.targetoptions.get("error_model") == "numpy", f"{info.name}.{name}"
    assert len(seen) > 50


# ---- refused inputs: (id, call, exception type, phrase) -----------------------------------

def load_opt_state(cls, entry, group=None, **kw):
    p = nn.Parameter(tn.ones(3))
    opt = cls([p], lr=0.1, **kw)
    sd = {"state": {0: entry}}
    if group is not None:
        sd["param_groups"] = [{**opt.state_dict()["param_groups"][0], **group}]
    opt.load_state_dict(sd)
    p.grad = tn.ones(3)
    opt.step()


def renorm(r, d):
    return F.renormalize(tn.tensor(np.random.default_rng(0).random((5, 7)).astype(np.float32)), r, d)


MOMENTS = {"exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3)}
ONES3, ZEROS7 = tn.tensor(np.ones(3, np.float32)), tn.tensor(np.zeros(7, np.float32))
BAD = [
    # R1/R4, optimizer side: a partial or mistyped per-parameter state is refused at load time,
    # not as a KeyError/AttributeError at the next step.
    ("R1 Adam state without step", lambda: load_opt_state(optim.Adam, MOMENTS), ValueError,
     "the state of parameter 0 lacks ['step']"),
    ("R1 Adam step a str", lambda: load_opt_state(optim.Adam, {"step": "1", **MOMENTS}), ValueError,
     "optimizer state 0.step must be a finite number >= 0, got '1'"),
    ("R1 Adam step negative", lambda: load_opt_state(optim.Adam, {"step": -1, **MOMENTS}), ValueError,
     "0.step must be a finite number >= 0"),
    ("R1 Adam step an array", lambda: load_opt_state(optim.Adam, {"step": np.ones(3), **MOMENTS}),
     ValueError, "0.step must be a finite number"),
    ("R1 Adam exp_avg None", lambda: load_opt_state(optim.Adam, {**MOMENTS, "step": 1, "exp_avg": None}),
     ValueError, "lacks ['exp_avg']"),
    ("R1 RMSprop momentum state missing",
     lambda: load_opt_state(optim.RMSprop, {"step": 1, "square_avg": np.zeros(3)}, momentum=0.9),
     ValueError, "lacks ['momentum_buffer']"),
    ("R1 Adagrad state without sum", lambda: load_opt_state(optim.Adagrad, {"step": 1}), ValueError,
     "lacks ['sum']"),
    ("R1 loaded lr a str", lambda: load_opt_state(optim.SGD, {}, group={"lr": "x"}), ValueError,
     "Invalid learning rate: x"),
    ("R1 loaded momentum negative", lambda: load_opt_state(optim.SGD, {}, group={"momentum": -1}),
     ValueError, "Invalid momentum value: -1"),
    # R7
    ("R7 renormalize r of 3 for 7 channels", lambda: renorm(ONES3, ZEROS7), ValueError,
     "renormalize: r has shape (3,), expected a scalar or (7,) for 7 channels"),
    ("R7 renormalize d of (7, 1)", lambda: renorm(1.0, np.zeros((7, 1))), ValueError,
     "renormalize: d has shape (7, 1)"),
    ("R7 renormalize r None", lambda: renorm(None, 0.0), TypeError,
     "renormalize: r must be a number or a Tensor of shape (7,), got NoneType"),
    ("R7 renormalize d a str", lambda: renorm(1.0, "a"), TypeError, "renormalize: d must be a number"),
]


@pytest.mark.parametrize("call, exc, phrase", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, phrase):
    with pytest.raises(exc) as info:
        call()
    assert phrase in str(info.value)


def test_legal_optimizer_states_and_renorm_arguments_still_load():
    """R4: torch's SGD state of ``momentum_buffer: None`` means no buffer yet (this worked on the
    base already); a 0-d parameter's moments stay arrays; r and d take numbers and (C,)."""
    load_opt_state(optim.SGD, {"momentum_buffer": None}, momentum=0.9)
    p = nn.Parameter(tn.tensor(np.float32(1.0)))
    opt = optim.Adam([p])
    p.grad = tn.tensor(np.float32(1.0))
    opt.step()
    opt.load_state_dict(opt.state_dict())
    opt.step()  # was AttributeError: the 0-d exp_avg came back as a float
    assert renorm(1.0, np.zeros(7)).shape == (5, 7)
    assert renorm(ONES3.data[0], ZEROS7).shape == (5, 7)
