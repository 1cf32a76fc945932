"""Bad inputs found by a second, independent probe (/work/notes/probe2.py), one row each, plus the
legal calls it found wrong, against torch or a NumPy oracle."""
import numpy as np
import pytest

import tinynorm as tn
import tinynorm.checkpoint as ck
from tinynorm import nn, optim


def _x(*shape):
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


BAD = [
    ("Linear(dtype=float16)", lambda: nn.Linear(3, 4, dtype="float16"), ValueError, "Linear: dtype"),
    ("Conv2d(dtype=float16)", lambda: nn.Conv2d(3, 4, 3, dtype=np.float16), ValueError, "Conv2d: dtype"),
    ("reshape(-2, 10)", lambda: tn.tensor(_x(5, 4)).reshape(-2, 10), ValueError, "invalid shape dimension -2"),
    ("reshape(-1, -1)", lambda: tn.tensor(_x(5, 4)).reshape(-1, -1), ValueError, "only one dimension"),
    ("reshape(3, 7) of 20", lambda: tn.tensor(_x(5, 4)).reshape(3, 7), ValueError, "invalid for an input of 20"),
    ("reshape(0, -1) of empty", lambda: tn.zeros(0, 3).reshape(0, -1), ValueError, "invalid for an input of 0"),
    ("reshape(2.5, 8)", lambda: tn.tensor(_x(5, 4)).reshape(2.5, 8), TypeError, "sequence of ints"),
    ("checkpoint.save(loader=None)", lambda: ck.save("/tmp/x.npz", nn.Linear(2, 2),
                                                     optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1),
                                                     None, 1, {}, []), TypeError, "loader must have"),
]


@pytest.mark.parametrize("call, exc, phrase", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, phrase):
    with pytest.raises(exc, match=phrase):
        call()


def test_linear_with_zero_in_features_matches_torch():
    torch = pytest.importorskip("torch")
    m = nn.Linear(0, 3)
    y = m(tn.zeros(2, 0))
    tm = torch.nn.Linear(0, 3)
    with torch.no_grad():
        tm.bias.copy_(torch.tensor(m.bias.data))
    np.testing.assert_array_equal(y.data, tm(torch.zeros(2, 0)).detach().numpy())
    assert not m.bias.data.any()


@pytest.mark.parametrize("exponent", [0, 0.0, 1, 2, 3.5])
def test_pow_grad_at_zero_matches_torch(exponent):
    torch = pytest.importorskip("torch")
    a = np.array([0.0, 0.5, 2.0], np.float64)
    x = tn.tensor(a, requires_grad=True)
    (x ** exponent).sum().backward()
    tx = torch.tensor(a, requires_grad=True)
    (tx ** exponent).sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("shape", [(-1,), (2, -1), (4, 5), (20,), (1, 20, 1)])
def test_legal_reshapes_match_numpy(shape):
    a = _x(5, 4)
    np.testing.assert_array_equal(tn.tensor(a).reshape(*shape).data, a.reshape(shape))
    assert tn.zeros(0, 3).reshape(-1).shape == (0,)
