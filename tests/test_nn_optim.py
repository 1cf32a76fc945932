"""Modules, state_dict round trips, and optimizers against their update rules (and torch)."""
import numpy as np
import pytest

import tinynorm as tn
from tinynorm import nn, optim
from tinynorm.models import CNN, MLP
from tinynorm.serialization import load, save


def test_state_dict_keys_and_npz_round_trip(tmp_path):
    model = CNN(1, (8, 8))
    keys = list(model.state_dict())
    assert keys[:6] == ["features.0.weight", "features.1.weight", "features.1.bias",
                        "features.1.running_mean", "features.1.running_var",
                        "features.1.num_batches_tracked"]
    assert keys[-2:] == ["classifier.weight", "classifier.bias"]
    path = tmp_path / "model.npz"
    save(model.state_dict(), path)
    other = CNN(1, (8, 8))
    other.load_state_dict(load(path))
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k], v)
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == set(keys)


def test_load_state_dict_reports_mismatches():
    model = MLP(64)
    sd = dict(model.state_dict())
    sd.pop("layer2.bias")
    with pytest.raises(RuntimeError) as info:  # torch's error
        model.load_state_dict(sd)
    assert str(info.value) == ('Error(s) in loading state_dict for MLP:\n\t'
                               'Missing key(s) in state_dict: "layer2.bias". ')
    sd = dict(model.state_dict())
    sd["layer1.weight"] = np.zeros((3, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="layer1.weight has shape"):
        model.load_state_dict(sd)


def test_train_eval_and_zero_grad_reach_submodules():
    model = MLP(4, hidden=3)
    model.eval()
    assert not model.norm.training
    model.train()
    assert model.norm.training
    out = model(tn.tensor(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert "Linear(in_features=4, out_features=3, bias=False)" in repr(model)


def _torch_pair(make_ours, make_ref, steps=5, strided=False):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 3))
    grads = [rng.standard_normal((4, 3)) for _ in range(steps)]
    if strided:
        holder = np.zeros((4, 6))
        holder[:, ::2] = w0
        p = nn.Parameter(holder[:, ::2])
        assert not p.data.flags.c_contiguous
    else:
        p = nn.Parameter(w0.copy())
    pr = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    ours, ref = make_ours([p]), make_ref(torch, [pr])
    for g in grads:
        p.grad = tn.tensor(g)
        pr.grad = torch.from_numpy(g.copy())
        ours.step()
        ref.step()
    np.testing.assert_allclose(p.numpy(), pr.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw", [dict(lr=0.1), dict(lr=0.1, momentum=0.9),
                                dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                                dict(lr=0.05, momentum=0.5, dampening=0.1)])
def test_sgd_matches_torch(kw):
    _torch_pair(lambda ps: optim.SGD(ps, **kw), lambda torch, ps: torch.optim.SGD(ps, **kw))


@pytest.mark.parametrize("cls,kw", [("Adam", dict(lr=0.01)), ("Adam", dict(lr=0.01, weight_decay=0.1)),
                                    ("AdamW", dict(lr=0.01)), ("AdamW", dict(lr=0.01, betas=(0.8, 0.9)))])
@pytest.mark.parametrize("strided", [False, True], ids=["fused-kernel", "numpy-path"])
def test_adam_family_matches_torch(cls, kw, strided):
    _torch_pair(lambda ps: getattr(optim, cls)(ps, **kw), lambda torch, ps: getattr(torch.optim, cls)(ps, **kw),
                strided=strided)


def test_sgd_plain_step_by_hand():
    p = nn.Parameter(np.array([1.0, -2.0]))
    p.grad = tn.tensor(np.array([0.5, 0.25]))
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.numpy(), [0.95, -2.025])


def test_optimizer_argument_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([nn.Parameter(np.ones(1))], lr=0.1, nesterov=True)
