"""eps = 0 is a legal eps (the project's rule: finite and >= 0): a constant slice then has zero
variance and an infinite 1/std, so the output is NaN, as in PyTorch, not a ZeroDivisionError."""
import numpy as np
import pytest

import tinynorm as tn
import tinynorm.functional as F

CASES = {
    "layer_norm": lambda x: F.layer_norm(x, (5,), eps=0.0),
    "group_norm": lambda x: F.group_norm(x, 3, eps=0.0),
    "instance_norm": lambda x: F.instance_norm(x, eps=0.0),
    "batch_norm": lambda x: F.batch_norm(x, None, None, training=True, eps=0.0),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_constant_slice_with_zero_eps_gives_nan_not_an_error(name, dtype):
    x = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(dtype)
    x[1] = 2.0
    x[:, 1] = -1.0
    t = tn.tensor(x, requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = CASES[name](t)
    out = y.numpy()
    assert out.dtype == dtype
    constant = np.zeros(x.shape, bool)
    if name == "batch_norm":
        constant[:, 1] = True
    elif name == "layer_norm":
        constant[1] = True
        constant[:, 1] = True
    else:
        constant[1] = True
        constant[:, 1] = True
    assert np.isnan(out[constant]).all()
    assert np.isfinite(out[~constant]).all()
    with np.errstate(divide="ignore", invalid="ignore"):
        y.sum().backward()
    assert t.grad.shape == x.shape


@pytest.mark.parametrize("name", ["group_norm", "layer_norm"])
def test_zero_eps_matches_torch(name):
    """PyTorch 2.13 refuses eps <= 0 in batch_norm's training mode, and its instance_norm (run
    as batch_norm) returns 0 where 1/std is infinite; tinynorm keeps NaN for both."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((4, 3, 5))
    x[2] = 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        ours = CASES[name](tn.tensor(x)).numpy()
    tx = torch.tensor(x)
    theirs = {"layer_norm": lambda: torch.nn.functional.layer_norm(tx, (5,), eps=0.0),
              "group_norm": lambda: torch.nn.functional.group_norm(tx, 3, eps=0.0),
              }[name]().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10, equal_nan=True)


def test_batch_renorm_momentum_none_is_named():
    x = tn.tensor(np.random.default_rng(2).standard_normal((4, 3)))
    with pytest.raises(ValueError, match="batch_renorm: momentum must be a real number"):
        F.batch_renorm(x, tn.tensor(np.zeros(3)), tn.tensor(np.ones(3)), training=True,
                       momentum=None)
