"""The GPU path (CuPy arrays, numba.cuda kernels) against the CPU path.

Marked ``gpu``: these run only where CuPy sees an NVIDIA GPU and the CUDA
simulator is off (``NUMBA_ENABLE_CUDASIM=0 python -m pytest -m gpu``); they
skip everywhere else, CI included. Every op: outputs, input gradients,
parameter gradients and running statistics equal the CPU's within 1e-5 in
float32 (1e-10 in float64); the MLP and the CNN train on digits to the CPU's
accuracy.
"""
import copy

import numpy as np
import pytest

import tinynorm as tn
from tinynorm import nn
from tinynorm import functional as F

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not tn.cuda.is_available(), reason="needs CuPy and an NVIDIA GPU")]


def _host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _tol(dtype):
    return dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)


def _compare_module(build, shape, dtype=np.float32, train=True, steps=2, seed=0):
    """Forward + backward ``steps`` times on both devices; compare everything the module produces."""
    rng = np.random.default_rng(seed)
    cpu = build(dtype)
    gpu = copy.deepcopy(cpu).to("cuda")
    cpu.train(train)
    gpu.train(train)
    for _ in range(steps):
        x = rng.standard_normal(shape).astype(dtype)
        xc = tn.tensor(x, requires_grad=True)
        xg = tn.tensor(x, requires_grad=True, device="cuda")
        yc, yg = cpu(xc), gpu(xg)
        assert yg.device == "cuda"
        np.testing.assert_allclose(_host(yg.data), yc.data, **_tol(dtype))
        dy = rng.standard_normal(yc.shape).astype(dtype)
        yc.backward(dy)
        yg.backward(tn.tensor(dy, device="cuda"))
        np.testing.assert_allclose(_host(xg.grad.data), xc.grad.data, **_tol(dtype))
        for (name, pc), (_, pg) in zip(cpu.named_parameters(), gpu.named_parameters()):
            if pc.grad is not None:
                np.testing.assert_allclose(_host(pg.grad.data), pc.grad.data, err_msg=name,
                                           **_tol(dtype))
            pc.grad = pg.grad = None
    for key, value in cpu.state_dict().items():
        np.testing.assert_allclose(_host(gpu.state_dict()[key]), value, err_msg=key, **_tol(dtype))


MODULES = [
    ("BatchNorm1d", lambda dt: nn.BatchNorm1d(7, dtype=dt), (33, 7)),
    ("BatchNorm2d", lambda dt: nn.BatchNorm2d(5, dtype=dt), (6, 5, 9, 11)),
    ("BatchNorm2d-big", lambda dt: nn.BatchNorm2d(3, dtype=dt), (64, 3, 40, 40)),
    ("LayerNorm", lambda dt: nn.LayerNorm(300, dtype=dt), (37, 300)),
    ("LayerNorm-2d", lambda dt: nn.LayerNorm((4, 6), dtype=dt), (5, 3, 4, 6)),
    ("GroupNorm", lambda dt: nn.GroupNorm(4, 12, dtype=dt), (3, 12, 7, 5)),
    ("InstanceNorm2d", lambda dt: nn.InstanceNorm2d(6, affine=True, track_running_stats=True,
                                                    dtype=dt), (4, 6, 8, 9)),
    ("RMSNorm", lambda dt: nn.RMSNorm(130, dtype=dt), (21, 130)),
    ("LocalResponseNorm", lambda dt: nn.LocalResponseNorm(5), (3, 9, 6, 7)),
    ("FilterResponseNorm2d", lambda dt: nn.FilterResponseNorm2d(6, dtype=dt), (3, 6, 7, 8)),
    ("Conv2d", lambda dt: nn.Conv2d(4, 6, 3, stride=2, padding=1, dtype=dt), (3, 4, 11, 9)),
    ("Conv2d-dilated-groups", lambda dt: nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2,
                                                   dtype=dt), (2, 4, 8, 8)),
    ("weight_norm(Conv2d)", lambda dt: nn.weight_norm(nn.Conv2d(3, 5, 3, dtype=dt)), (2, 3, 7, 7)),
    ("weight_norm(Linear)", lambda dt: nn.weight_norm(nn.Linear(9, 4, dtype=dt)), (6, 9)),
    ("MaxPool2d", lambda dt: nn.MaxPool2d(3, stride=2, padding=1), (2, 3, 9, 10)),
    ("AvgPool2d", lambda dt: nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True), (2, 3, 9, 10)),
    ("AdaptiveAvgPool2d", lambda dt: nn.AdaptiveAvgPool2d((3, 4)), (2, 3, 10, 9)),
    ("ReLU", lambda dt: nn.ReLU(), (4, 50)),
    ("Linear", lambda dt: nn.Linear(20, 7, dtype=dt), (5, 20)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,build,shape", MODULES, ids=[m[0] for m in MODULES])
def test_module_matches_cpu(name, build, shape, dtype):
    _compare_module(build, shape, dtype)


@pytest.mark.parametrize("name,build,shape", MODULES[:7], ids=[m[0] for m in MODULES[:7]])
def test_eval_mode_matches_cpu(name, build, shape):
    _compare_module(build, shape, np.float32, train=False, steps=1)


def test_cross_entropy_and_log_softmax_match_cpu():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((17, 10)).astype(np.float32)
    target = rng.integers(0, 10, 17)
    target[3] = -100
    for kw in (dict(), dict(label_smoothing=0.1), dict(reduction="sum")):
        lc = tn.tensor(logits, requires_grad=True)
        lg = tn.tensor(logits, requires_grad=True, device="cuda")
        oc = F.cross_entropy(lc, target, **kw)
        og = F.cross_entropy(lg, tn.tensor(target, device="cuda").data, **kw)
        np.testing.assert_allclose(_host(og.data), oc.data, rtol=1e-5, atol=1e-6)
        oc.backward()
        og.backward()
        np.testing.assert_allclose(_host(lg.grad.data), lc.grad.data, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [lambda p: tn.optim.Adam(p, lr=1e-2),
                                  lambda p: tn.optim.AdamW(p, lr=1e-2),
                                  lambda p: tn.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)])
def test_optimizers_match_cpu(make):
    cpu = nn.Linear(6, 3)
    gpu = copy.deepcopy(cpu).to("cuda")
    oc, og = make(cpu.parameters()), make(gpu.parameters())
    rng = np.random.default_rng(2)
    for _ in range(3):
        x = rng.standard_normal((8, 6)).astype(np.float32)
        for net, opt, dev in ((cpu, oc, "cpu"), (gpu, og, "cuda")):
            opt.zero_grad()
            (net(tn.tensor(x, device=dev)) ** 2).sum().backward()
            opt.step()
    for key, value in cpu.state_dict().items():
        np.testing.assert_allclose(_host(gpu.state_dict()[key]), value, rtol=1e-5, atol=1e-6)


def test_fast_launch_equals_numba_launch():
    """The CuPy launch path (Numba's cubin, Numba's ABI) computes what Numba's own launch does."""
    import cupy
    from tinynorm.kernels.cuda import launch
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 3, 33, 17)).astype(np.float32)
    m = nn.GroupNorm(3, 3).to("cuda")
    outs, counts = [], []
    for fast in (True, False):
        launch.FAST_LAUNCH = fast
        try:
            before = launch.fast_launches()
            outs.append(_host(m(tn.tensor(x, device="cuda")).data))
            counts.append(launch.fast_launches() - before)
        finally:
            launch.FAST_LAUNCH = True
    assert counts[0] > 0 and counts[1] == 0, counts
    np.testing.assert_array_equal(outs[0], outs[1])
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        handle = launch.current_stream().handle
        on_stream = m(tn.tensor(x, device="cuda")).data
    assert int(getattr(handle, "value", handle)) == stream.ptr != 0
    stream.synchronize()
    np.testing.assert_array_equal(_host(on_stream), outs[0])


def test_bad_input_on_gpu_names_the_problem():
    with pytest.raises(RuntimeError, match="same device"):
        nn.Linear(3, 2)(tn.zeros(4, 3, device="cuda"))
    bn = nn.BatchNorm2d(4).to("cuda")
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(tn.zeros(1, 4, 1, 1, device="cuda"))
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 4, ...\)"):
        nn.GroupNorm(2, 4).to("cuda")(tn.zeros(3, 6, 5, device="cuda"))
    with pytest.raises(ValueError):
        nn.LayerNorm(5).to("cuda")(tn.zeros(3, 4, device="cuda"))


def test_training_on_gpu_reaches_cpu_accuracy():
    from tinynorm.train import train
    for model in ("mlp", "cnn"):
        cpu = train(model=model, norm="bn", epochs=6, quiet=True)["test_accuracy"]
        gpu = train(model=model, norm="bn", epochs=6, quiet=True, device="cuda")["test_accuracy"]
        assert gpu >= 0.96, (model, gpu)
        assert abs(gpu - cpu) <= 0.015, (model, cpu, gpu)


@pytest.mark.parametrize("norm", ["gn", "ln", "frn", "wn", "rms", "in", "lrn"])
def test_cnn_norms_train_on_gpu(norm):
    from tinynorm.train import train
    cpu = train(model="cnn", norm=norm, epochs=4, quiet=True)["test_accuracy"]
    gpu = train(model="cnn", norm=norm, epochs=4, quiet=True, device="cuda")["test_accuracy"]
    assert abs(gpu - cpu) <= 0.02, (norm, cpu, gpu)
