"""Bad inputs found by the fourth probe (issue 12), one row each (exception type and a phrase of
the message), and the legal calls next to them checked against torch or by hand."""
import json
import os
import shutil
import tempfile

import numpy as np
import pytest

import tinynorm as tn
from tinynorm import functional as F
from tinynorm import nn, optim, saving, serialization
from tinynorm.data import DataLoader, default_collate

from bad_input_tables import names_once_test, raises_test


def x(*shape, dtype=np.float32):
    return tn.tensor(np.arange(np.prod(shape), dtype=dtype).reshape(shape) / 7)


BAD = [
    ("bce target 2", lambda: F.binary_cross_entropy(tn.tensor([0.3]), tn.tensor([2.0])),
     ValueError, "all elements of target should be between 0 and 1"),
    ("bce target -0.1", lambda: nn.BCELoss()(tn.tensor([0.3]), tn.tensor([-0.1])),
     ValueError, "all elements of target should be between 0 and 1"),
    ("bce target nan", lambda: F.binary_cross_entropy(tn.tensor([0.3]), tn.tensor([np.nan])),
     ValueError, "all elements of target should be between 0 and 1"),
    ("Linear.to(int64)", lambda: nn.Linear(2, 2).to(tn.int64), TypeError,
     "nn.Module.to only accepts floating point or complex dtypes, but got desired dtype=int64"),
    ("Linear.to(bool)", lambda: nn.Linear(2, 2).to(dtype=bool), TypeError,
     "only accepts floating point or complex dtypes"),
    ("Linear.to('cpu', int32)", lambda: nn.Linear(2, 2).to("cpu", "int32"), TypeError,
     "only accepts floating point or complex dtypes"),
    ("ModuleList['0']", lambda: nn.ModuleList([nn.ReLU()])["0"], TypeError,
     "ModuleList indices must be integers or slices, not str"),
    ("ModuleList[1.0] = m", lambda: nn.ModuleList([nn.ReLU()]).__setitem__(1.0, nn.ReLU()),
     TypeError, "ModuleList indices must be integers, not float"),
    ("ModuleList[0:1] = m", lambda: nn.ModuleList([nn.ReLU()]).__setitem__(slice(0, 1), nn.ReLU()),
     TypeError, "ModuleList indices must be integers, not slice"),
    ("Sequential['0']", lambda: nn.Sequential(nn.ReLU())["0"], TypeError,
     "Sequential indices must be integers or slices, not str"),
    ("Sequential[5]", lambda: nn.Sequential(nn.ReLU())[5], IndexError,
     "index 5 is out of range for a Sequential of 1"),
    ("optimizer params 'ab'", lambda: reload_groups(["ab", "cd"]), ValueError,
     "a group's 'params' must be a list of parameter indices, got str 'ab'"),
    ("optimizer params None", lambda: reload_groups([None, None]), ValueError,
     "a group's 'params' must be a list of parameter indices, got NoneType"),
    ("optimizer params [0], [0]", lambda: reload_groups([[0], [0]]), ValueError,
     "the groups' 'params' lists hold [0, 0]; expected the indices 0 to 1, each once"),
    ("optimizer params [5], [1]", lambda: reload_groups([[5], [1]]), ValueError,
     "expected the indices 0 to 1, each once"),
    ("optimizer params [True], [0]", lambda: reload_groups([[True], [0]]), ValueError,
     "expected the indices 0 to 1, each once"),
    ("optimizer params ['1'], ['0']", lambda: reload_groups([["1"], ["0"]]), ValueError,
     "expected the indices 0 to 1, each once"),
    ("DataLoader of ragged samples", lambda: list(DataLoader([np.zeros(1), np.zeros(2)],
                                                             batch_size=2)),
     RuntimeError, "stack expects each tensor to be equal size, but got [1] at entry 0 and [2] "
                   "at entry 1"),
    ("DataLoader of ragged (x, y) samples",
     lambda: list(DataLoader([(np.zeros(1), 0), (np.zeros(1), 1), (tn.zeros(3), 2)], batch_size=3)),
     RuntimeError, "but got [1] at entry 0 and [3] at entry 2"),
    ("DataLoader columns of unequal length", lambda: DataLoader((np.ones(3), np.ones(4))),
     ValueError, "a tuple of arrays is read as columns; pass a list for a dataset of samples"),
] + [(f"tn.load of header {h!r}", (lambda h: lambda: load_header(h))(h), ValueError,
        "corrupt header entry") for h in [
    {"__dict__": [["a"]]}, {"__dict__": 5}, {"__dict__": [[["k"], 1]]}, {"__dict__": [[True, 1]]},
    {"__dict__": [["a", 1]], "x": 2}, {"__tuple__": 3}, {"__tensor__": ["0"]},
    {"__tensor__": "0", "requires_grad": "yes"}, {"__array__": "0", "requires_grad": True},
    [{"__dict__": None}]]]


def load_header(header):
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "bad.pt")
    serialization.save({"0": np.zeros(2, np.float32), saving.HEADER: np.frombuffer(
        json.dumps(header).encode(), dtype=np.uint8)}, path)
    try:
        tn.load(path)
    except ValueError as e:
        assert path in str(e)
        raise
    finally:
        shutil.rmtree(folder)


def two_groups(sizes=(2, 2)):
    ps = [nn.Parameter(np.full(n, i + 1.0, np.float32)) for i, n in enumerate(sizes)]
    opt = optim.SGD([{"params": ps[:-1], "lr": 0.1}, {"params": ps[-1:], "lr": 0.2}], momentum=0.9)
    return ps, opt


def reload_groups(ids):
    ps, opt = two_groups()
    sd = opt.state_dict()
    opt.load_state_dict({"state": {}, "param_groups": [dict(g, params=i) for g, i in
                                                       zip(sd["param_groups"], ids)]})


test_bad_input = raises_test(BAD)
test_the_table_names_each_case_once = names_once_test(BAD)


def shared():
    lin, bn = nn.Linear(2, 2), nn.BatchNorm1d(2)
    return nn.Sequential(lin, lin, bn, bn)


def test_a_shared_submodule_is_walked_once_as_torch():
    s = shared()
    assert [n for n, _ in s.named_modules()] == ["", "0", "2"]
    assert [n for n, _ in s.named_modules(remove_duplicate=False)] == ["", "0", "1", "2", "3"]
    assert [n for n, _ in s.named_children()] == ["0", "2"]
    assert len(list(s.children())) == 2 and len(list(s.modules())) == 3
    assert [n for n, _ in s.named_buffers()] == ["2.running_mean", "2.running_var",
                                                  "2.num_batches_tracked"]
    calls = []
    s.apply(lambda m: calls.append(type(m).__name__))
    assert calls == ["Linear", "BatchNorm1d", "Sequential"]
    s[0].weight.data[...] = 1.0
    s.apply(lambda m: m.weight.data.__imul__(0.5) if isinstance(m, nn.Linear) else None)
    np.testing.assert_array_equal(s[1].weight.data, 0.5)


def test_state_dict_of_a_shared_submodule_keeps_every_key_as_torch():
    s = shared()
    keys = list(s.state_dict())
    assert keys[:4] == ["0.weight", "0.bias", "1.weight", "1.bias"] and len(keys) == 14
    assert s.load_state_dict(s.state_dict()) == ([], [])
    torch = pytest.importorskip("torch")
    t = torch.nn.Sequential(*[torch.nn.Linear(2, 2)] * 2, *[torch.nn.BatchNorm1d(2)] * 2)
    assert list(t.state_dict()) == keys
    assert [n for n, _ in t.named_modules()] == [n for n, _ in s.named_modules()]


def test_module_to_takes_a_float_dtype_alone_or_after_the_device():
    assert nn.Linear(2, 2).to(tn.float64).weight.dtype == np.float64
    assert nn.Linear(2, 2).to("cpu", "float64").bias.dtype == np.float64
    assert nn.BatchNorm1d(2).double().num_batches_tracked.dtype == np.int64


def test_load_state_dict_returns_the_incompatible_keys_by_name():
    lin = nn.Linear(2, 2)
    sd = {"weight": np.zeros((2, 2), np.float32), "extra": np.zeros(1)}
    result = lin.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    assert type(result).__name__ == "_IncompatibleKeys"


def test_slicing_a_sequential_gives_a_sequential_under_the_same_keys():
    s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    head = s[:-1]
    assert type(head) is nn.Sequential and head(tn.ones(4, 2)).shape == (4, 3)
    assert list(s[1:].state_dict()) == ["2.weight", "2.bias"]
    assert s[-1] is s[2] and s[np.int64(0)] is s[0]
    ml = nn.ModuleList([nn.ReLU(), nn.Tanh(), nn.Sigmoid()])
    assert type(ml[1:]) is nn.ModuleList and list(ml[1:]._modules) == ["0", "1"]
    torch = pytest.importorskip("torch")
    t = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    assert list(t[1:].state_dict()) == list(s[1:].state_dict())


def test_optimizer_state_follows_the_saved_groups_params_as_torch():
    (a, b), opt = two_groups()
    (a.sum() * 10 - b.sum() * 10).backward()
    opt.step()
    sd = opt.state_dict()
    swapped = {"state": sd["state"], "param_groups": sd["param_groups"][::-1]}
    (a2, b2), fresh = two_groups()
    fresh.load_state_dict(swapped)
    assert [g["lr"] for g in fresh.param_groups] == [0.2, 0.1]
    np.testing.assert_array_equal(fresh.state[a2]["momentum_buffer"], -10.0)
    np.testing.assert_array_equal(fresh.state[b2]["momentum_buffer"], 10.0)
    torch = pytest.importorskip("torch")
    ta, tb = (torch.nn.Parameter(torch.full((2,), v)) for v in (1.0, 2.0))
    topt = torch.optim.SGD([{"params": [ta], "lr": 0.1}, {"params": [tb], "lr": 0.2}], momentum=0.9)
    (ta.sum() * 10 - tb.sum() * 10).backward()
    topt.step()
    tsd = topt.state_dict()
    topt.load_state_dict({"state": tsd["state"], "param_groups": tsd["param_groups"][::-1]})
    assert [g["lr"] for g in topt.param_groups] == [0.2, 0.1]
    np.testing.assert_array_equal(topt.state[ta]["momentum_buffer"].numpy(), -10.0)


def test_save_keeps_parameters_requires_grad_and_sharing_as_torch(tmp_path):
    lin = nn.Linear(2, 2)
    t = tn.ones(3)
    t.requires_grad = True
    a = np.zeros(2)
    frozen = nn.Parameter(np.ones(2, np.float32), requires_grad=False)
    obj = {"w": lin.weight, "again": [lin.weight], "t": t, "plain": tn.ones(2), "a": a, "a2": (a,),
           "frozen": frozen, "shared": nn.Sequential(lin, lin).state_dict()}
    tn.save(obj, tmp_path / "c.pt")
    for back in (tn.load(tmp_path / "c.pt"), tn.load(tmp_path / "c.pt", map_location="cpu")):
        assert type(back["w"]) is nn.Parameter and back["w"].requires_grad
        assert back["w"] is back["again"][0]
        assert type(back["t"]) is tn.Tensor and back["t"].requires_grad
        assert not back["plain"].requires_grad and back["a"] is back["a2"][0]
        assert type(back["frozen"]) is nn.Parameter and not back["frozen"].requires_grad
        assert back["shared"]["0.weight"] is back["shared"]["1.weight"]
        np.testing.assert_array_equal(back["w"].data, lin.weight.data)
    torch = pytest.importorskip("torch")
    tl = torch.nn.Linear(2, 2)
    torch.save({"w": tl.weight, "again": [tl.weight]}, tmp_path / "t.pt")
    tback = torch.load(tmp_path / "t.pt")
    assert type(tback["w"]) is torch.nn.Parameter and tback["w"].requires_grad
    assert tback["w"] is tback["again"][0]


def test_a_list_is_a_dataset_of_samples_as_torch():
    a, b = np.zeros(3, np.float32), np.ones(3, np.float32)
    batches = list(DataLoader([a, b], batch_size=1))
    assert [t.shape for t in batches] == [(1, 3), (1, 3)]
    X, y = np.arange(6, dtype=np.float32).reshape(3, 2), np.array([0, 1, 2])
    (xb, yb), (xl, yl) = DataLoader(list(zip(X, y)), batch_size=2)
    np.testing.assert_array_equal(xb.data, X[:2])
    assert xb.dtype == np.float32 and yb.dtype == np.int64 and xl.shape == (1, 2)
    assert [t.tolist() for t in DataLoader([1, 2, 3], batch_size=2)] == [[1, 2], [3]]
    (xc, yc), = DataLoader((X, y), batch_size=3)
    np.testing.assert_array_equal(xc.data, X)
    (xs, ys), = DataLoader(tuple(zip(X, y)), batch_size=3)
    np.testing.assert_array_equal(xs.data, X)
    np.testing.assert_array_equal(ys.data, y)
    assert default_collate([np.float32(1), np.float32(2)]).dtype == np.float32
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader as TorchLoader
    assert [tuple(t.shape) for t in TorchLoader([a, b], batch_size=1)] == [(1, 3), (1, 3)]
    assert torch.utils.data.default_collate([np.float32(1)]).dtype == torch.float32


@pytest.mark.parametrize("batch, dtype, values", [
    ([1, 2.5], np.float32, [1.0, 2.5]),
    ([True, 2], np.int64, [1, 2]),
    ([True, False], np.bool_, [True, False]),
    ([3, 4], np.int64, [3, 4]),
    ([1.5, 2], np.float64, [1.5, 2.0]),
])
def test_default_collate_of_python_numbers_takes_the_dtype_of_the_whole_batch(batch, dtype, values):
    from tinynorm.data.dataset import default_collate
    out = default_collate(batch)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.data, values)
