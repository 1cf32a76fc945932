"""The pieces a ported PyTorch script leans on: tensors, devices, DataLoader, containers,
Module.apply, tn.save/tn.load."""
import numpy as np
import pytest

import tinynorm as tn
import tinynorm.functional as F
from tinynorm import nn
from tinynorm.data import DataLoader, Dataset, TensorDataset, default_collate


# ---- tensors ----------------------------------------------------------------------------------

def test_comparisons_give_boolean_tensors():
    a, b = tn.tensor([1.0, 2.0, 3.0]), tn.tensor([3.0, 2.0, 1.0])
    for got, want in [(a == b, [0, 1, 0]), (a.eq(b), [0, 1, 0]), (a != b, [1, 0, 1]), (a.ne(b), [1, 0, 1]),
                      (a < b, [1, 0, 0]), (a.lt(b), [1, 0, 0]), (a <= 2, [1, 1, 0]), (a.le(2), [1, 1, 0]),
                      (a > b, [0, 0, 1]), (a.gt(b), [0, 0, 1]), (a >= 2, [0, 1, 1]), (a.ge(2), [0, 1, 1])]:
        assert isinstance(got, tn.Tensor) and got.dtype == np.bool_
        np.testing.assert_array_equal(got.numpy(), np.array(want, bool))
    assert (a == b).sum().item() == 1


def test_argmax_max_min_with_dim_and_keepdim():
    x = tn.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])
    assert x.argmax(dim=1, keepdim=True).shape == (2, 1)
    np.testing.assert_array_equal(x.argmax(1).numpy(), [1, 0])
    values, indices = x.max(1)
    np.testing.assert_array_equal(values.numpy(), [5.0, 7.0])
    np.testing.assert_array_equal(indices.numpy(), [1, 0])
    assert x.min(dim=0, keepdim=True).values.shape == (1, 3)
    np.testing.assert_array_equal(x.min(dim=0).indices.numpy(), [0, 1, 0])
    assert x.max().item() == 7.0 and x.min().item() == 0.0 and x.argmax().item() == 3
    np.testing.assert_array_equal(x.max(tn.tensor([[3.0, 3.0, 3.0]])).numpy(), [[3, 5, 3], [7, 3, 7]])


def test_view_view_as_flatten_and_casts():
    x = tn.tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4), requires_grad=True)
    assert x.view(6, 4).shape == (6, 4) and x.view(-1).shape == (24,)
    assert x.view_as(tn.zeros(4, 6)).shape == (4, 6)
    assert tn.flatten(x, 1).shape == (2, 12) and tn.flatten(x).shape == (24,)
    assert x.long().dtype == np.int64 and x.int().dtype == np.int32 and x.bool().dtype == np.bool_
    d = x.double()
    assert d.dtype == np.float64 and d.requires_grad
    (d * 2).sum().backward()
    assert x.grad.dtype == np.float32 and np.all(x.grad.numpy() == 2)
    assert x.float() is x
    assert x.to(tn.float64).dtype == np.float64 and x.to("cpu", tn.float64).dtype == np.float64
    assert float(tn.tensor(2.5)) == 2.5 and int(tn.tensor(3)) == 3


def test_manual_seed_repeats_initialization_dropout_and_shuffling():
    def draw():
        tn.manual_seed(7)
        order = np.concatenate([b[0].numpy() for b in DataLoader((np.arange(20),), 4, shuffle=True)])
        return nn.Linear(3, 2).weight.numpy().copy(), F.dropout(tn.ones(8), 0.5).numpy(), order
    (w1, d1, o1), (w2, d2, o2) = draw(), draw()
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(d1, d2)
    np.testing.assert_array_equal(o1, o2)
    assert not np.array_equal(o1, np.arange(20))


def test_device_selection_as_scripts_write_it():
    device = "cuda" if tn.cuda.is_available() else "cpu"
    x = tn.ones(2).to(device)
    assert x.device == device and str(x.device) == device
    dev = tn.device(device)
    assert dev.type == device and repr(dev) == f"device(type='{device}')"
    assert tn.device("cpu") == "cpu" and tn.ones(1).device == tn.device("cpu")
    model = nn.Linear(2, 2).to(tn.device("cpu"))
    assert model.weight.device == "cpu"
    assert tn.accelerator.is_available() == tn.cuda.is_available()
    cur = tn.accelerator.current_accelerator()
    assert (cur is None) == (not tn.cuda.is_available())
    with pytest.raises(RuntimeError, match="Expected one of cpu, cuda"):
        tn.device("mps")
    with pytest.raises(RuntimeError, match="one device of each type"):
        tn.device("cuda:1")


# ---- DataLoader -------------------------------------------------------------------------------

class Squares(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return np.full((2,), i, np.float32), i * i


def test_dataloader_yields_tensors_from_arrays_and_tensor_datasets():
    x, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    for loader in (DataLoader((x, y), batch_size=4), DataLoader(TensorDataset(tn.tensor(x), tn.tensor(y)),
                                                                 batch_size=4)):
        batches = list(loader)
        assert all(isinstance(t, tn.Tensor) for b in batches for t in b)
        assert [len(b[1]) for b in batches] == [4, 4, 2]
        np.testing.assert_array_equal(batches[1][0].numpy(), x[4:8])


def test_dataloader_takes_any_indexable_dataset_shuffle_drop_last_and_collate_fn():
    loader = DataLoader(Squares(), batch_size=4, shuffle=True, drop_last=True, seed=0)
    assert len(loader) == 2
    seen = []
    for xb, yb in loader:
        assert xb.shape == (4, 2) and xb.dtype == np.float32 and yb.dtype == np.int64
        np.testing.assert_array_equal(yb.numpy(), xb.numpy()[:, 0] ** 2)
        seen += list(xb.numpy()[:, 0])
    assert len(set(seen)) == 8
    sums = DataLoader(Squares(), batch_size=5, collate_fn=lambda items: sum(i[1] for i in items))
    assert list(sums) == [0 + 1 + 4 + 9 + 16, 25 + 36 + 49 + 64 + 81]
    assert len(DataLoader(Squares(), batch_size=3, num_workers=2, pin_memory=True)) == 4


def test_default_collate_follows_torch():
    batch = default_collate([{"x": np.ones(2), "n": 1, "f": 0.5}, {"x": np.zeros(2), "n": 2, "f": 1.5}])
    assert batch["x"].shape == (2, 2) and batch["n"].dtype == np.int64 and batch["f"].dtype == np.float64
    with pytest.raises(TypeError, match="default_collate"):
        default_collate([object()])


@pytest.mark.parametrize("kwargs, exc, phrase", [
    (dict(dataset=object()), ValueError, "__len__ and __getitem__"),
    (dict(dataset=Squares(), num_workers=-1), ValueError, "num_workers"),
    (dict(dataset=Squares(), collate_fn=3), TypeError, "collate_fn must be callable"),
])
def test_dataloader_bad_inputs(kwargs, exc, phrase):
    with pytest.raises(exc, match=phrase):
        DataLoader(**kwargs)


def test_tensor_dataset_refuses_unequal_lengths():
    with pytest.raises(ValueError, match="Size mismatch"):
        TensorDataset(np.ones(3), np.ones(4))


# ---- modules ----------------------------------------------------------------------------------

def test_dropout2d_zeroes_whole_channels_and_identity_passes_through():
    tn.manual_seed(0)
    m = nn.Dropout2d(0.5)
    y = m(tn.ones(4, 6, 3, 3)).numpy()
    per_channel = y.reshape(4, 6, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2).all(-1))
    assert 0 < (per_channel == 0).all(-1).sum() < 24
    m.eval()
    np.testing.assert_array_equal(m(tn.ones(2, 3, 2, 2)).numpy(), 1)
    x = tn.ones(2)
    assert nn.Identity()(x) is x
    with pytest.raises(ValueError, match="dropout2d expects"):
        F.dropout2d(tn.ones(2, 3, 4, 5, 6))


def test_module_list_and_dict_register_their_modules():
    layers = nn.ModuleList([nn.Linear(2, 3), nn.ReLU()])
    layers.append(nn.Linear(3, 1))
    heads = nn.ModuleDict({"a": nn.Linear(1, 1)})
    heads["b"] = nn.Linear(1, 2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers, self.heads = layers, heads

        def forward(self, x):
            for m in self.layers:
                x = m(x)
            return self.heads["b"](x)

    net = Net()
    assert list(net.state_dict()) == ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias",
                                      "heads.a.weight", "heads.a.bias", "heads.b.weight", "heads.b.bias"]
    assert net(tn.ones(4, 2)).shape == (4, 2)
    assert len(layers) == 3 and isinstance(layers[-1], nn.Linear) and len(layers[:2]) == 2
    assert list(heads) == ["a", "b"] and "a" in heads
    with pytest.raises(TypeError, match="not a Module"):
        layers.append(3)
    with pytest.raises(IndexError, match="out of range"):
        layers[5]


def test_apply_named_modules_and_children():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    visited = []
    net.apply(lambda m: visited.append(type(m).__name__))
    assert visited == ["Linear", "Linear", "ReLU", "Sequential", "Sequential"]

    def init(m):
        if isinstance(m, nn.Linear):
            m.weight.data[...] = 1.0
    net.apply(init)
    assert all(np.all(p.numpy() == 1) for n, p in net.named_parameters() if n.endswith("weight"))
    assert [n for n, _ in net.named_modules()] == ["", "0", "1", "1.0", "1.1"]
    assert [type(m).__name__ for m in net.children()] == ["Linear", "Sequential"]


# ---- tn.save / tn.load ------------------------------------------------------------------------

def test_save_load_checkpoint_dicts(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    opt = tn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(tn.ones(4, 2)).sum().backward()
    opt.step()
    state = {"net": model.state_dict(), "acc": 0.9, "epoch": 3, "optimizer": opt.state_dict(),
             "best": None, "name": "resnet", "flags": [True, 2, 1.5], "t": tn.tensor([1.0, 2.0])}
    for name in ("ckpt.pth", "ckpt.safetensors"):
        tn.save(state, tmp_path / name)
        back = tn.load(tmp_path / name)
        assert set(back) == set(state)
        assert back["acc"] == 0.9 and back["epoch"] == 3 and back["best"] is None and back["name"] == "resnet"
        assert back["flags"] == [True, 2, 1.5] and isinstance(back["t"], tn.Tensor)
        for k, v in state["net"].items():
            np.testing.assert_array_equal(back["net"][k], v)
            assert back["net"][k].dtype == v.dtype
        assert list(back["optimizer"]["state"]) == [0, 1, 2, 3]
        fresh = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
        fresh.load_state_dict(back["net"])
        opt2 = tn.optim.SGD(fresh.parameters(), lr=0.5, momentum=0.9)
        opt2.load_state_dict(back["optimizer"])
        assert opt2.param_groups[0]["lr"] == 0.1


def test_save_refuses_what_it_cannot_write_without_pickle(tmp_path):
    with pytest.raises(TypeError, match=r"cannot save Linear at obj\['model'\]"):
        tn.save({"model": nn.Linear(2, 2)}, tmp_path / "a.pth")
    with pytest.raises(TypeError, match="cannot save function"):
        tn.save({"f": [lambda: 0]}, tmp_path / "a.pth")
    with pytest.raises(TypeError, match="dict keys must be strings or integers"):
        tn.save({(1, 2): 3}, tmp_path / "a.pth")
    with pytest.raises(ValueError, match="Python objects"):
        tn.save({"a": np.array([object()])}, tmp_path / "a.pth")
    assert not (tmp_path / "a.pth").exists()
    tn.save({"a": 1}, tmp_path / "a.pth")
    with pytest.raises(TypeError, match="cannot save"):
        tn.save({"a": {1, 2}}, tmp_path / "a.pth")
    assert tn.load(tmp_path / "a.pth") == {"a": 1}


def test_load_refuses_pickles_and_reads_plain_state_dicts(tmp_path):
    np.savez(tmp_path / "p.npz", a=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        tn.load(tmp_path / "p.npz")
    tn.serialization.save({"w": np.ones(2)}, tmp_path / "plain.npz")
    assert list(tn.load(tmp_path / "plain.npz")) == ["w"]
