"""Probe 3's autograd, module and dtype findings (S1, S2, S3, S5, R5, R6, R8), one row each: bad
calls with the exception type and a phrase of the message, legal calls with the value or gradient
torch gives (checked against torch when it is installed, else against the hand-derived value)."""
import re

import numpy as np
import pytest

import tinynorm as tn
from tinynorm import functional as F
from tinynorm import nn, optim


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
]


@pytest.mark.parametrize("call, exc, phrase", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, phrase):
    with pytest.raises(exc, match=re.escape(phrase)):
        call()


def test_the_table_names_each_case_once():
    assert len({b[0] for b in BAD}) == len(BAD)


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
