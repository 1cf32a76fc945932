"""Probe 4's findings on views, autograd.grad and the gradient-testing kit, one row each
(exception type and a phrase of the message), and the legal calls next to them."""
import re

import numpy as np
import pytest

import tinynorm as tn


def x(*shape, dtype=np.float64, requires_grad=False):
    return tn.tensor(np.arange(np.prod(shape), dtype=dtype).reshape(shape) / 7,
                     requires_grad=requires_grad)


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
