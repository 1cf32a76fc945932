"""tinynorm.profiler: what it records, the bytes it counts, the table, the trace, and that it switches off."""
import json

import numpy as np
import pytest

import tinynorm as tn
from tinynorm import autograd, kernels, nn, profiler
from tinynorm import functional as F
from tinynorm.data import DataLoader


def rows(prof):
    return {e.key: e for e in prof.key_averages()}


def test_records_forward_backward_with_counts_and_nesting():
    x = tn.tensor(np.ones((4, 3)), requires_grad=True)
    with profiler.profile() as prof:
        y = (x * 2.0) * x
        y.sum().backward()
    r = rows(prof)
    assert r["Mul"].count == 2 and r["MulBackward0"].count == 2
    assert r["Sum"].count == 1 and r["SumBackward0"].count == 1
    for e in r.values():
        assert 0 <= e.self_time_ns <= e.time_ns
    assert autograd._profiler is None and kernels._profiler is None and profiler._active is None


def test_kernel_bytes_are_the_arrays_handed_to_the_kernel():
    x = tn.tensor(np.random.default_rng(0).standard_normal((6, 3, 5)).astype(np.float32),
                  requires_grad=True)
    with profiler.profile() as prof:
        y = F.batch_norm(x, None, None, training=True)
        y.backward(np.ones((6, 3, 5), dtype=np.float32))
    r = rows(prof)
    vec = 3 * 8
    assert r["kernel:batch_norm.bn_stats"].bytes == x.data.nbytes + 3 * vec
    # x in, y out, and the mean, scale and shift vectors
    apply = r["kernel:batch_norm.bn_forward_apply"]
    assert apply.bytes == 2 * x.data.nbytes + 3 * vec and apply.gbps > 0
    assert r["BatchNorm"].bytes == apply.bytes
    backward = r["NativeBatchNormBackward0"]
    assert backward.bytes == (r["kernel:batch_norm.bn_backward_reduce"].bytes
                              + r["kernel:batch_norm.bn_backward_apply"].bytes)
    assert backward.time_ns >= r["kernel:batch_norm.bn_backward_apply"].time_ns


def test_optimizer_step_and_loader_batches_are_recorded():
    tn.manual_seed(0)
    net = nn.Linear(3, 2)
    opt = tn.optim.SGD(net.parameters(), lr=0.1)
    loader = DataLoader((np.ones((10, 3), np.float32), np.zeros(10, np.int64)), batch_size=4)
    with profiler.profile() as prof:
        for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(net(tn.Tensor(xb)), yb).backward()
            opt.step()
        with profiler.record_function("my range"):
            pass
    r = rows(prof)
    assert r["enumerate(DataLoader)#DataLoader.__next__"].count == 3
    assert r["Optimizer.step#SGD.step"].count == 3
    assert r["my range"].count == 1
    for xb, yb in loader:
        pass
    assert sum(e.count for e in prof.key_averages()) == len(prof.events)


def test_table_sorts_limits_and_refuses_unknown_keys():
    x = tn.tensor(np.ones(5), requires_grad=True)
    with profiler.profile() as prof:
        for _ in range(3):
            (x * x).exp().sum().backward()
    table = prof.key_averages().table(sort_by="calls", row_limit=2)
    lines = table.splitlines()
    assert lines[1].split()[:3] == ["Name", "Self", "%"]
    body = lines[3:-2]
    assert len(body) == 2 and all(line.split()[-3] == "3" for line in body)
    assert lines[-1].startswith("Self time total:")
    full = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=-1)
    assert len(full.splitlines()) - 5 == len(prof.key_averages())
    with pytest.raises(ValueError, match="sort_by must be one of"):
        prof.key_averages().table(sort_by="speed")


def test_chrome_trace_is_trace_event_json(tmp_path):
    x = tn.tensor(np.ones(5), requires_grad=True)
    with profiler.profile() as prof:
        (x * x).relu().sum().backward()
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    events = json.loads(path.read_text())["traceEvents"]
    assert len(events) == len(prof.events)
    assert {e["ph"] for e in events} == {"X"}
    names = [e["name"] for e in events]
    assert "ReluBackward0" in names and "kernel:activation.relu_forward" in names
    relu = next(e for e in events if e["name"] == "ReLU")
    kern = next(e for e in events if e["name"] == "kernel:activation.relu_forward")
    assert relu["ts"] <= kern["ts"] and kern["ts"] + kern["dur"] <= relu["ts"] + relu["dur"] + 1e-3
    assert kern["args"]["bytes"] == 2 * x.data.nbytes


def test_profiler_switches_off_after_an_exception_and_refuses_nesting():
    with pytest.raises(ZeroDivisionError):
        with profiler.profile():
            1 / 0
    assert autograd._profiler is None and profiler._active is None
    with profiler.profile():
        with pytest.raises(RuntimeError, match="already active"):
            profiler.profile().start()
    x = tn.tensor(np.ones(3), requires_grad=True)
    (x * x).sum().backward()


def test_train_cli_prints_the_profile_table(capsys):
    from tinynorm.cli import main
    assert main(["train", "--epochs", "1", "--batch-size", "256", "--profile"]) == 0
    out = capsys.readouterr().out
    assert "Self time total:" in out and "Optimizer.step#Adam.step" in out
    assert "enumerate(DataLoader)#DataLoader.__next__" in out
