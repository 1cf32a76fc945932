"""Probe 4's findings on views, autograd.grad and the gradient-testing kit, one row each
(exception type and a phrase of the message), and the legal calls next to them."""
import numpy as np
import pytest

from hypothesis import strategies as st

import tinynorm as tn
from tinynorm.autograd import Function, grad
from tinynorm.testing import (CheckFailure, check_op, gradcheck, gradgradcheck, normal_arrays,
                              shapes)

from bad_input_tables import names_once_test, raises_test


def x(*shape, dtype=np.float64, requires_grad=False):
    return tn.tensor(np.arange(np.prod(shape), dtype=dtype).reshape(shape) / 7,
                     requires_grad=requires_grad)


def graph():
    leaf = x(3, requires_grad=True)
    return (leaf * 2).sum(), leaf


def grad_of(inputs=None, outputs=None, **kw):
    y, leaf = graph()
    return grad(y if outputs is None else outputs, leaf if inputs is None else inputs, **kw)


class WrongSquare(Function):
    def forward(self, a):
        self.a = a
        return a * a

    def backward(self, g):
        return g * self.a


def square(t):
    return t * t


ONE = [np.linspace(-1.0, 1.0, 3)]
CASE = st.tuples(normal_arrays(shapes(1, 2)))
KIT = {"gradcheck": gradcheck, "gradgradcheck": gradgradcheck}


def kit(which, *args, **kw):
    return KIT[which](*args, **kw)


def op(inputs=CASE, fn=square, oracle=np.square, **kw):
    kw.setdefault("devices", ("cpu",))
    return check_op(fn, oracle, inputs, max_examples=2, **kw)


KIT_ROWS = [
    ("wrt=[2]", lambda k: kit(k, square, ONE, wrt=[2]), IndexError,
     "wrt index 2 is out of range for 1 inputs"),
    ("wrt=[-2]", lambda k: kit(k, square, ONE, wrt=[-2]), IndexError,
     "wrt index -2 is out of range for 1 inputs"),
    ("wrt=[0, -1]", lambda k: kit(k, square, ONE, wrt=[0, -1]), ValueError,
     "wrt names an input more than once"),
    ("wrt=[]", lambda k: kit(k, square, ONE, wrt=[]), ValueError, "wrt is empty"),
    ("wrt=0", lambda k: kit(k, square, ONE, wrt=0), TypeError,
     "wrt must be a list of argument indices, got int"),
    ("wrt=[0.0]", lambda k: kit(k, square, ONE, wrt=[0.0]), TypeError,
     "wrt entries must be ints, got float"),
    ("wrt=[True]", lambda k: kit(k, square, ONE, wrt=[True]), TypeError,
     "wrt entries must be ints, got bool"),
    ("eps=0", lambda k: kit(k, square, ONE, eps=0), ValueError, "eps must be finite and > 0"),
    ("eps=-1e-6", lambda k: kit(k, square, ONE, eps=-1e-6), ValueError,
     "eps must be finite and > 0"),
    ("eps=nan", lambda k: kit(k, square, ONE, eps=float("nan")), ValueError,
     "eps must be finite and > 0"),
    ("eps='1e-6'", lambda k: kit(k, square, ONE, eps="1e-6"), TypeError,
     "eps must be a real number, got str"),
    ("atol=-1", lambda k: kit(k, square, ONE, atol=-1), ValueError,
     "atol must be finite and >= 0, got -1"),
    ("rtol=inf", lambda k: kit(k, square, ONE, rtol=float("inf")), ValueError,
     "rtol must be finite and >= 0"),
    ("fn=3", lambda k: kit(k, 3, ONE), TypeError, "fn must be callable, got int 3"),
    ("fn returns a float", lambda k: kit(k, lambda t: 3.0, ONE), TypeError,
     "fn must return one Tensor, got float 3.0"),
    ("fn returns an array", lambda k: kit(k, lambda t: t.numpy(), ONE), TypeError,
     "fn must return one Tensor, got ndarray"),
    ("fn returns a tuple", lambda k: kit(k, lambda t: (t, t), ONE), TypeError,
     "fn must return one Tensor, got tuple"),
    ("inputs an array", lambda k: kit(k, square, np.ones(3)), TypeError,
     "inputs must be a list or tuple of arrays or Tensors (one per argument of fn), got ndarray"),
    ("inputs a Tensor", lambda k: kit(k, square, tn.ones(3)), TypeError,
     "inputs must be a list or tuple of arrays or Tensors (one per argument of fn), got Tensor"),
    ("inputs=None", lambda k: kit(k, square, None), TypeError,
     "inputs must be a list or tuple of arrays or Tensors"),
    ("inputs=[]", lambda k: kit(k, square, []), ValueError, "inputs is empty"),
    ("inputs=[[1.0, 2.0]]", lambda k: kit(k, square, [[1.0, 2.0]]), TypeError,
     "inputs[0] must be an array, a Tensor or a number, got list"),
    ("inputs=[None]", lambda k: kit(k, square, [None]), TypeError,
     "inputs[0] must be an array, a Tensor or a number, got NoneType"),
    ("inputs=[True]", lambda k: kit(k, square, [True]), TypeError,
     "inputs[0] must be an array, a Tensor or a number, got bool"),
    ("inputs of str", lambda k: kit(k, square, [np.array(["a"])]), TypeError,
     "inputs[0] must hold real numbers, got <U1"),
    ("inputs of complex", lambda k: kit(k, square, [np.ones(2, complex)]), TypeError,
     "inputs[0] must hold real numbers, got complex128"),
]
BAD_KIT = [(f"{k}({r[0]})", (lambda call, k: lambda: call(k))(r[1], k), *r[2:])
           for k in KIT for r in KIT_ROWS]
BAD_OP = [
    ("check_op(wrt=[5])", lambda: op(wrt=[5]), IndexError, "wrt index 5 is out of range for 1"),
    ("check_op(wrt=[-2])", lambda: op(wrt=[-2]), IndexError, "wrt index -2 is out of range"),
    ("check_op(wrt=[0, 0])", lambda: op(wrt=[0, 0]), ValueError,
     "wrt names an input more than once"),
    ("check_op(wrt='0')", lambda: op(wrt="0"), TypeError, "wrt must be a list of argument indices"),
    ("check_op(wrt naming an int argument)",
     lambda: op(st.tuples(normal_arrays(shapes(1, 2)), st.just(2)), lambda t, n: t * n,
                lambda a, n: a * n, wrt=[1]), ValueError,
     "wrt index 1 names argument 1, a int that is not a float array"),
    ("check_op(inputs=None)", lambda: op(None), TypeError,
     "inputs must be a hypothesis strategy or a tuple of strategies"),
    ("check_op(inputs=())", lambda: op(()), ValueError, "inputs is empty"),
    ("check_op(inputs=(array,))", lambda: op((np.ones(2),)), TypeError,
     "inputs[0] must be a hypothesis strategy, got ndarray"),
    ("check_op(dtypes=('float7',))", lambda: op(dtypes=("float7",)), TypeError,
     "check_op: dtypes: dtype must be one of"),
    ("check_op(dtypes=('int32',))", lambda: op(dtypes=("int32",)), ValueError,
     "unsupported dtype int32; tinynorm kernels take float32 or float64"),
    ("check_op(dtypes='float32')", lambda: op(dtypes="float32"), TypeError,
     "dtypes must be a tuple of dtypes"),
    ("check_op(dtypes=())", lambda: op(dtypes=()), ValueError, "dtypes is empty"),
    ("check_op(devices=('tpu',))", lambda: op(devices=("tpu",)), RuntimeError,
     "Expected one of cpu, cuda device type"),
    ("check_op(devices='cpu')", lambda: check_op(square, np.square, CASE, devices="cpu"),
     TypeError, "devices must be a tuple of device names"),
    ("check_op(fn=None)", lambda: op(fn=None), TypeError, "fn must be callable, got NoneType"),
    ("check_op(oracle=1)", lambda: op(oracle=1), TypeError, "oracle must be callable, got int"),
    ("check_op(fn returns a float)", lambda: op(fn=lambda t: 1.0), TypeError,
     "check_op: fn must return one Tensor, got float 1.0"),
    ("check_op(fd_eps=0)", lambda: op(fd_eps=0), ValueError, "fd_eps must be finite and > 0"),
    ("check_op(fd_tol=-1)", lambda: op(fd_tol=-1), ValueError, "fd_tol must be finite and >= 0"),
    ("check_op(tol={'float7': 1})", lambda: op(tol={"float7": 1e-4}), TypeError,
     "dtype must be one of"),
    ("check_op(tol={float32: -1})", lambda: op(tol={np.float32: -1.0}), ValueError,
     "tol must be finite and >= 0"),
    ("check_op(tol=1e-4)", lambda: op(tol=1e-4), TypeError, "tol must be a dict"),
    ("check_op(max_examples=0)", lambda: check_op(square, np.square, CASE, max_examples=0),
     ValueError,
     "max_examples must be a positive int"),
]

NOT_VIEWABLE = "view size is not compatible with input tensor's size and stride"

BAD = [
    ("transpose().view(-1)", lambda: x(2, 3).transpose(0, 1).view(-1), RuntimeError,
     NOT_VIEWABLE),
    ("transpose().view(6, 1)", lambda: x(2, 3).transpose(0, 1).view(6, 1), RuntimeError,
     NOT_VIEWABLE),
    ("permute().view_as", lambda: x(2, 3, 4).permute(2, 0, 1).view_as(x(24)), RuntimeError,
     NOT_VIEWABLE),
    ("transpose().view(2, 3)", lambda: x(2, 3).transpose(0, 1).view(2, 3), RuntimeError,
     NOT_VIEWABLE),
    ("grad(grad_outputs=2.0)", lambda: grad_of(grad_outputs=2.0), TypeError,
     "grad_outputs must be a Tensor, None or a sequence of them, got float"),
    ("grad(grad_outputs=ndarray)", lambda: grad_of(grad_outputs=np.ones(())), TypeError,
     "grad_outputs must be a Tensor, None or a sequence of them, got ndarray"),
    ("grad(grad_outputs=[2.0])", lambda: grad_of(grad_outputs=[2.0]), TypeError,
     "gradients can be either Tensors or None, but got float"),
    ("grad(grad_outputs=[ndarray])", lambda: grad_of(grad_outputs=[np.ones(())]), TypeError,
     "gradients can be either Tensors or None, but got ndarray"),
    ("grad(grad_outputs='a')", lambda: grad_of(grad_outputs="a"), TypeError,
     "grad_outputs must be a Tensor, None or a sequence of them, got str"),
    ("grad(inputs=[ndarray])", lambda: grad_of(inputs=[np.ones(3)]), TypeError,
     "all inputs have to be Tensors, but got ndarray at position 0"),
    ("grad(inputs=ndarray)", lambda: grad_of(inputs=np.ones(3)), TypeError,
     "inputs must be a Tensor or a sequence of Tensors, got ndarray"),
    ("grad(inputs=[])", lambda: grad_of(inputs=[]), RuntimeError,
     "`inputs` argument to `grad()` cannot be empty"),
    ("grad(outputs=2.0)", lambda: grad_of(outputs=2.0), TypeError,
     "outputs must be a Tensor or a sequence of Tensors, got float"),
    ("grad(outputs=[y, 2])", lambda: grad_of(outputs=[graph()[0], 2]), TypeError,
     "all outputs have to be Tensors, but got int at position 1"),
    ("grad(outputs=[])", lambda: grad_of(outputs=[]), RuntimeError,
     "`outputs` argument to `grad()` cannot be empty"),
    ("backward(gradient=, grad=)", lambda: graph()[0].backward(tn.ones(()), grad=tn.ones(())),
     TypeError, "got the gradient twice"),
    *BAD_KIT,
    *BAD_OP,
]


test_bad_input = raises_test(BAD)
test_the_table_names_each_case_once = names_once_test(BAD)


def test_view_shares_memory_and_reshape_still_copies():
    t = x(2, 3)
    t.view(3, 2).view(-1)[0:2].zero_()
    assert t.data[0, :2].tolist() == [0.0, 0.0]
    assert t.transpose(0, 1).reshape(-1).tolist() == t.data.T.reshape(-1).tolist()
    assert x(3, 1).transpose(0, 1).view(3).shape == (3,)
    assert x(2, 4)[:, :2].view(2, 2, 1).shape == (2, 2, 1)
    assert x(2, 0, 3).transpose(0, 2).view(-1).shape == (0,)


def test_grad_outputs_and_backward_take_what_torch_takes():
    y, leaf = graph()
    (g,) = grad(y, (leaf,), grad_outputs=(tn.tensor(3.0, dtype=tn.float64),), retain_graph=True)
    assert g.tolist() == [6.0] * 3
    assert grad([y], [leaf, leaf], grad_outputs=[None], retain_graph=True)[1].tolist() == [2.0] * 3
    y.backward(gradient=tn.tensor(1.0, dtype=tn.float64), retain_graph=True)
    y.backward(grad=tn.tensor(1.0, dtype=tn.float64), retain_graph=True)
    y.backward(tn.tensor(1.0, dtype=tn.float64))
    assert leaf.grad.tolist() == [6.0] * 3


KEPT = [
    ("grad(grad_outputs of the wrong shape)", lambda: grad_of(grad_outputs=[tn.ones(2)]),
     ValueError, "grad shape (2,) does not match tensor shape ()"),
    ("grad(two grad_outputs, one output)", lambda: grad_of(grad_outputs=[tn.ones(())] * 2),
     ValueError, "grad_outputs has 2 entries, expected 1"),
    ("grad(inputs not requiring grad)", lambda: grad_of(inputs=[tn.ones(3)]), RuntimeError,
     "One of the differentiated Tensors (input 0, shape (3,)) does not require grad"),
]


test_grad_refusals_kept_past_the_new_checks = raises_test(KEPT)


@pytest.mark.parametrize("wrt", [None, [0], [-1], (-1,), range(1)])
def test_a_wrong_backward_is_caught_whichever_way_wrt_names_it(wrt):
    with pytest.raises(AssertionError, match="gradcheck failed for input 0"):
        gradcheck(lambda t: WrongSquare.apply(t), ONE, wrt=wrt)
    with pytest.raises(CheckFailure, match="gradient of input 0"):
        op(fn=lambda t: WrongSquare.apply(t), wrt=wrt)


def test_the_kit_takes_negative_indices_and_tensors():
    assert gradcheck(lambda a, b: a * b, [np.ones(2), tn.ones(2)], wrt=[-1])
    assert gradcheck(lambda a, b: a * b, [np.float64(2.0), 3.0])
    assert gradgradcheck(lambda a, b: a * b, [np.ones(2), np.arange(2)], wrt=(-2,))
    op(fn=lambda a, n: a * n, oracle=lambda a, n: a * n, wrt=[-2],
       inputs=(normal_arrays(shapes(1, 2)), st.just(3)), dtypes=("float64", tn.float32))
