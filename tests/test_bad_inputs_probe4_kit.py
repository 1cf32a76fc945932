"""Probe 4's findings on views, autograd.grad and the gradient-testing kit, one row each
(exception type and a phrase of the message), and the legal calls next to them."""
import re

import numpy as np
import pytest

import tinynorm as tn
from tinynorm.autograd import grad


def x(*shape, dtype=np.float64, requires_grad=False):
    return tn.tensor(np.arange(np.prod(shape), dtype=dtype).reshape(shape) / 7,
                     requires_grad=requires_grad)


def graph():
    leaf = x(3, requires_grad=True)
    return (leaf * 2).sum(), leaf


def grad_of(inputs=None, outputs=None, **kw):
    y, leaf = graph()
    return grad(y if outputs is None else outputs, leaf if inputs is None else inputs, **kw)


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
    ("grad(grad_outputs of the wrong shape)", lambda: grad_of(grad_outputs=[tn.ones(2)]),
     ValueError, "grad shape (2,) does not match tensor shape ()"),
    ("grad(two grad_outputs, one output)", lambda: grad_of(grad_outputs=[tn.ones(())] * 2),
     ValueError, "grad_outputs has 2 entries, expected 1"),
    ("grad(inputs=[ndarray])", lambda: grad_of(inputs=[np.ones(3)]), TypeError,
     "all inputs have to be Tensors, but got ndarray at position 0"),
    ("grad(inputs=ndarray)", lambda: grad_of(inputs=np.ones(3)), TypeError,
     "inputs must be a Tensor or a sequence of Tensors, got ndarray"),
    ("grad(inputs=[])", lambda: grad_of(inputs=[]), RuntimeError,
     "`inputs` argument to `grad()` cannot be empty"),
    ("grad(inputs not requiring grad)", lambda: grad_of(inputs=[tn.ones(3)]), RuntimeError,
     "One of the differentiated Tensors (input 0, shape (3,)) does not require grad"),
    ("grad(outputs=2.0)", lambda: grad_of(outputs=2.0), TypeError,
     "outputs must be a Tensor or a sequence of Tensors, got float"),
    ("grad(outputs=[y, 2])", lambda: grad_of(outputs=[graph()[0], 2]), TypeError,
     "all outputs have to be Tensors, but got int at position 1"),
    ("grad(outputs=[])", lambda: grad_of(outputs=[]), RuntimeError,
     "`outputs` argument to `grad()` cannot be empty"),
    ("backward(gradient=, grad=)", lambda: graph()[0].backward(tn.ones(()), grad=tn.ones(())),
     TypeError, "got the gradient twice"),
]


@pytest.mark.parametrize("call, exc, phrase", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, phrase):
    with pytest.raises(exc, match=re.escape(phrase)):
        call()


def test_the_table_names_each_case_once():
    assert len({b[0] for b in BAD}) == len(BAD)


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
