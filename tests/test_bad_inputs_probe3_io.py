"""Probe 3's data, checkpoint, loss, optimizer and CLI findings (S4, S6-S8, R1-R4, R7), one row
each: a refused input (exception type and a phrase of the message), a CLI run (exit code, the
message, no traceback) or a right answer checked against torch when it is installed."""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import tinynorm as tn
from tinynorm import functional as F
from tinynorm import nn, optim

try:
    import torch
except ImportError:  # parity rows are skipped, the rest run
    torch = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((5, 4)).astype(np.float32)
ZERO_W0 = np.array([0, 1, 1, 1], np.float32)


# ---- right answers -------------------------------------------------------------------------

def loss_grad(lib, name, target, weight=None, **kw):
    """Gradient of ``name`` (cross_entropy/nll_loss, mean) w.r.t. LOGITS in tinynorm or torch."""
    if lib == "torch":
        x = torch.tensor(LOGITS, requires_grad=True)
        w = None if weight is None else torch.tensor(weight)
        out = getattr(torch.nn.functional, name)(x, torch.tensor(target), weight=w, **kw)
        out.backward()
        return float(out.detach()), x.grad.numpy()
    x = tn.tensor(LOGITS.copy(), requires_grad=True)
    out = getattr(F, name)(x, tn.tensor(target), weight=None if weight is None else tn.tensor(weight), **kw)
    out.backward()
    return float(out.data), x.grad.data


IGNORED = np.full(5, -100)
MIXED = np.array([0, -100, 0, -100, 0])
# (id, function name, target, class weight, kwargs, expected grad: "zero" or None = torch's)
LOSSES = [
    ("S4 cross_entropy every target ignored", "cross_entropy", IGNORED, None, {}, "zero"),
    ("S4 cross_entropy every target ignored, smoothing", "cross_entropy", IGNORED, None,
     {"label_smoothing": 0.1}, "zero"),
    ("S4 cross_entropy every target ignored, weighted", "cross_entropy", IGNORED, ZERO_W0, {}, "zero"),
    ("S4 nll_loss every target ignored", "nll_loss", IGNORED, None, {}, "zero"),
    ("S4 nll_loss every target ignored, weighted", "nll_loss", IGNORED, ZERO_W0, {}, "zero"),
    ("S4 cross_entropy ignored rows next to weight-0 rows", "cross_entropy", MIXED, ZERO_W0, {}, None),
    ("S4 nll_loss ignored rows next to weight-0 rows", "nll_loss", MIXED, ZERO_W0, {}, None),
]


@pytest.mark.parametrize("name, target, weight, kw, expect", [r[1:] for r in LOSSES],
                         ids=[r[0] for r in LOSSES])
def test_mean_loss_over_no_weight(name, target, weight, kw, expect):
    loss, grad = loss_grad("tinynorm", name, target, weight, **kw)
    assert np.isnan(loss)  # the mean of nothing, as in torch
    if expect == "zero":
        np.testing.assert_array_equal(grad, np.zeros_like(grad))
    if torch is not None:
        _, want = loss_grad("torch", name, target, weight, **kw)
        np.testing.assert_array_equal(np.isnan(grad), np.isnan(want))
        np.testing.assert_allclose(np.nan_to_num(grad), np.nan_to_num(want), atol=1e-6)
    elif expect is None:
        pytest.skip("torch is not installed")


def test_second_order_of_cross_entropy_when_every_target_is_ignored():
    target = IGNORED
    from tinynorm.autograd import grad
    x = tn.tensor(LOGITS.copy(), requires_grad=True)
    (g,) = grad(F.cross_entropy(x, tn.tensor(target), label_smoothing=0.1), [x], create_graph=True)
    (gg,) = grad((g * g).sum(), [x])
    assert np.isfinite(gg.data).all()
    if torch is not None:
        t = torch.tensor(LOGITS, requires_grad=True)
        (tg,) = torch.autograd.grad(torch.nn.functional.cross_entropy(
            t, torch.tensor(target), label_smoothing=0.1), [t], create_graph=True)
        (tgg,) = torch.autograd.grad((tg * tg).sum(), [t])
        np.testing.assert_allclose(gg.data, tgg.numpy(), atol=1e-6)


def test_an_all_padding_batch_leaves_the_parameters_finite():
    lin = nn.Linear(3, 4)
    opt = optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    F.cross_entropy(lin(tn.ones(2, 3)), tn.tensor(np.full(2, -100))).backward()
    opt.step()
    assert all(np.isfinite(p.data).all() for p in lin.parameters())


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_counted_samples_of_class_weight_0_keep_torchs_nan(name):
    """Not a finding (passes before the fix): the zero-gradient rule above must not hide these."""
    _, grad = loss_grad("tinynorm", name, np.zeros(5, int), ZERO_W0)
    _, want = loss_grad("torch", name, np.zeros(5, int), ZERO_W0)
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(want))


# ---- R3: every CPU kernel divides as NumPy does -------------------------------------------

@pytest.mark.parametrize("opt_cls, dtype", [(optim.Adam, np.float32), (optim.Adam, np.float64),
                                            (optim.AdamW, np.float32)],
                         ids=["R3 Adam eps=0 zero grad", "R3 Adam eps=0 float64",
                              "R3 AdamW eps=0 zero grad"])
def test_adam_with_eps_0_and_a_zero_gradient_gives_nan_as_torch(opt_cls, dtype):
    p = nn.Parameter(tn.tensor(np.ones(3, dtype)))
    p.grad = tn.tensor(np.zeros(3, dtype))
    opt_cls([p], lr=0.1, eps=0).step()  # was ZeroDivisionError from inside the Numba kernel
    assert np.isnan(p.data).all()


def test_every_cpu_kernel_is_compiled_with_numpys_error_model():
    import importlib
    import pkgutil

    from numba.core.registry import CPUDispatcher

    import tinynorm.kernels.cpu as cpu
    seen = []
    for info in pkgutil.iter_modules(cpu.__path__):
        mod = importlib.import_module(f"{cpu.__name__}.{info.name}")
        for name, obj in vars(mod).items():
            if isinstance(obj, CPUDispatcher) and obj.__module__ == mod.__name__:
                seen.append(name)
                assert obj.targetoptions.get("error_model") == "numpy", f"{info.name}.{name}"
    assert len(seen) > 50


# ---- refused inputs: (id, call, exception type, phrase) -----------------------------------

def load_opt_state(cls, entry, group=None, **kw):
    p = nn.Parameter(tn.ones(3))
    opt = cls([p], lr=0.1, **kw)
    sd = {"state": {0: entry}}
    if group is not None:
        sd["param_groups"] = [{**opt.state_dict()["param_groups"][0], **group}]
    opt.load_state_dict(sd)
    p.grad = tn.ones(3)
    opt.step()


def paired(labels, batch_size=2):
    from tinynorm.data import PairedBatchLoader
    return PairedBatchLoader((np.zeros((len(labels), 3), np.float32), labels), batch_size, seed=0)


def renorm(r, d):
    return F.renormalize(tn.tensor(np.random.default_rng(0).random((5, 7)).astype(np.float32)), r, d)


MOMENTS = {"exp_avg": np.zeros(3), "exp_avg_sq": np.zeros(3)}
ONES3, ZEROS7 = tn.tensor(np.ones(3, np.float32)), tn.tensor(np.zeros(7, np.float32))
BAD = [
    # R1/R4, optimizer side: a partial or mistyped per-parameter state is refused at load time,
    # not as a KeyError/AttributeError at the next step.
    ("R1 Adam state without step", lambda: load_opt_state(optim.Adam, MOMENTS), ValueError,
     "the state of parameter 0 lacks ['step']"),
    ("R1 Adam step a str", lambda: load_opt_state(optim.Adam, {"step": "1", **MOMENTS}), ValueError,
     "optimizer state 0.step must be a finite number >= 0, got '1'"),
    ("R1 Adam step negative", lambda: load_opt_state(optim.Adam, {"step": -1, **MOMENTS}), ValueError,
     "0.step must be a finite number >= 0"),
    ("R1 Adam step an array", lambda: load_opt_state(optim.Adam, {"step": np.ones(3), **MOMENTS}),
     ValueError, "0.step must be a finite number"),
    ("R1 Adam exp_avg None", lambda: load_opt_state(optim.Adam, {**MOMENTS, "step": 1, "exp_avg": None}),
     ValueError, "lacks ['exp_avg']"),
    ("R1 RMSprop momentum state missing",
     lambda: load_opt_state(optim.RMSprop, {"step": 1, "square_avg": np.zeros(3)}, momentum=0.9),
     ValueError, "lacks ['momentum_buffer']"),
    ("R1 Adagrad state without sum", lambda: load_opt_state(optim.Adagrad, {"step": 1}), ValueError,
     "lacks ['sum']"),
    ("R1 loaded lr a str", lambda: load_opt_state(optim.SGD, {}, group={"lr": "x"}), ValueError,
     "Invalid learning rate: x"),
    ("R1 loaded momentum negative", lambda: load_opt_state(optim.SGD, {}, group={"momentum": -1}),
     ValueError, "Invalid momentum value: -1"),
    # S7
    ("S7 PairedBatchLoader: no class has two examples",
     lambda: paired(np.arange(5)), ValueError,
     "PairedBatchLoader: 5 examples make 0 same-label pairs, fewer than the 1 of one batch"),
    ("S7 PairedBatchLoader: no examples", lambda: paired(np.zeros(0, int)), ValueError,
     "0 examples make 0 same-label pairs"),
    ("S7 PairedBatchLoader: fewer pairs than one batch",
     lambda: paired(np.array([0, 0, 1, 1, 2, 3]), batch_size=6), ValueError,
     "make 2 same-label pairs, fewer than the 3 of one batch (batch_size 6)"),
    # R7
    ("R7 renormalize r of 3 for 7 channels", lambda: renorm(ONES3, ZEROS7), ValueError,
     "renormalize: r has shape (3,), expected a scalar or (7,) for 7 channels"),
    ("R7 renormalize d of (7, 1)", lambda: renorm(1.0, np.zeros((7, 1))), ValueError,
     "renormalize: d has shape (7, 1)"),
    ("R7 renormalize r None", lambda: renorm(None, 0.0), TypeError,
     "renormalize: r must be a number or a Tensor of shape (7,), got NoneType"),
    ("R7 renormalize d a str", lambda: renorm(1.0, "a"), TypeError, "renormalize: d must be a number"),
]


@pytest.mark.parametrize("call, exc, phrase", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, phrase):
    with pytest.raises(exc) as info:
        call()
    assert phrase in str(info.value)


def test_load_state_dict_key_errors_are_torchs_runtime_error():
    """R1: missing and unexpected keys raised KeyError('load_state_dict: missing keys [...]')."""
    lin = nn.Linear(2, 3)
    sd = {"weight": lin.weight.data.copy(), "extra": np.ones(1, np.float32)}
    with pytest.raises(RuntimeError) as info:
        lin.load_state_dict(sd)
    assert str(info.value) == ('Error(s) in loading state_dict for Linear:\n\tMissing key(s) in '
                               'state_dict: "bias". \n\tUnexpected key(s) in state_dict: "extra". ')
    if torch is not None:
        with pytest.raises(RuntimeError) as want:
            torch.nn.Linear(2, 3).load_state_dict({k: torch.tensor(v) for k, v in sd.items()})
        assert str(info.value) == str(want.value)
    missing, unexpected = lin.load_state_dict(sd, strict=False)
    assert (missing, unexpected) == (["bias"], ["extra"])


def test_paired_batches_are_tensors_as_dataloaders():
    """S7: PairedBatchLoader yields (inputs, labels) Tensors like DataLoader (it gave ndarrays)."""
    batches = list(paired(np.array([0, 0, 1, 1, 1, 2]), batch_size=2))
    assert len(batches) == 2
    for xb, yb in batches:
        assert isinstance(xb, tn.Tensor) and isinstance(yb, tn.Tensor)
        assert xb.shape == (2, 3) and yb.data[0] == yb.data[1]


def test_legal_optimizer_states_and_renorm_arguments_still_load():
    """R4: torch's SGD state of ``momentum_buffer: None`` means no buffer yet (this worked on the
    base already); a 0-d parameter's moments stay arrays; r and d take numbers and (C,)."""
    load_opt_state(optim.SGD, {"momentum_buffer": None}, momentum=0.9)
    p = nn.Parameter(tn.tensor(np.float32(1.0)))
    opt = optim.Adam([p])
    p.grad = tn.tensor(np.float32(1.0))
    opt.step()
    opt.load_state_dict(opt.state_dict())
    opt.step()  # was AttributeError: the 0-d exp_avg came back as a float
    assert renorm(1.0, np.zeros(7)).shape == (5, 7)
    assert renorm(ONES3.data[0], ZEROS7).shape == (5, 7)


# ---- the CLI: (id, setup(tmp) -> argv, exit code, phrase); python -m tinynorm in a subprocess ----

def run_cli(*argv, cwd=None):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "NUMBA_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "tinynorm", *map(str, argv)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "ck.npz"
    r = run_cli("train", "--epochs", "1", "--save", path)
    assert r.returncode == 0, r.stderr
    return path


def tampered(fn):
    """A resume of the checkpoint after ``fn(arrays, meta) -> (arrays, meta)``."""
    def setup(tmp, ck):
        z = dict(np.load(ck))
        z, meta = fn(z, json.loads(z["meta"].tobytes().decode()))
        z["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        np.savez(tmp / "tam.npz", **z)
        return ["train", "--epochs", "2", "--resume", tmp / "tam.npz"]
    return setup


def without(key):
    return tampered(lambda z, m: (z, {k: v for k, v in m.items() if k != key}))


def with_meta(**fields):
    return tampered(lambda z, m: (z, {**m, **fields}))


def idx_file(path, arr, code=0x08):
    with open(path, "wb") as f:
        f.write(bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, ">u4").tobytes())
        f.write(arr.astype(">u1" if code == 0x08 else ">i1").tobytes())


def mnist_dir(n=20, h=28, w=28, test_hw=None, labels=None):
    """A --data directory of IDX files; the setup of a CLI row."""
    def setup(tmp, ck):
        images = RNG.integers(0, 255, (n, h, w))
        idx_file(tmp / "train-images-idx3-ubyte", images)
        idx_file(tmp / "train-labels-idx1-ubyte", np.arange(n) % 10 if labels is None else labels,
                 0x08 if labels is None or labels.min() >= 0 else 0x09)
        idx_file(tmp / "t10k-images-idx3-ubyte", RNG.integers(0, 255, (10,) + (test_hw or (h, w))))
        idx_file(tmp / "t10k-labels-idx1-ubyte", np.arange(10))
        return ["train", "--epochs", "1", "--batch-size", "4", "--data", tmp]
    return setup


CLI = [
    ("R2 --workers 2: resume settings mismatch in a worker",
     lambda tmp, ck: ["train", "--epochs", "2", "--resume", ck, "--workers", "2"], 2,
     "failed: ValueError: --resume"),  # either rank may report first
    ("R2 --workers 2 --timeout 1e-9", lambda tmp, ck: ["train", "--workers", "2", "--timeout", "1e-9"],
     2, "failed: ExchangeTimeout: rank"),
    ("S8 --workers 2 --profile", lambda tmp, ck: ["train", "--workers", "2", "--profile"], 2,
     "--profile is read only with one process per run"),
    ("S6 IDX images of 0x0 pixels", mnist_dir(h=0, w=0), 2,
     "train-images-idx3-ubyte: images of 0x0 pixels; an image needs at least one row and one column"),
    ("S6 IDX images of 0 rows", mnist_dir(h=0, w=5), 2, "images of 0x5 pixels"),
    ("S6 IDX images of 0 columns", mnist_dir(h=3, w=0), 2, "images of 3x0 pixels"),
    ("S6 IDX negative labels", mnist_dir(labels=-(np.arange(20) % 3)), 2,
     "train-labels-idx1-ubyte: holds the negative label -2"),
    ("S6 IDX test images of another size", mnist_dir(test_hw=(20, 20)), 2,
     "the test images are 20x20 pixels, the training images 28x28"),
    ("R1 meta a JSON list", tampered(lambda z, m: (z, [1, 2])), 2,
     "tam.npz: corrupt checkpoint metadata: a list, not a JSON object"),
    ("R1 no optimizer_scalars", without("optimizer_scalars"), 2, "no field 'optimizer_scalars'"),
    ("R1 no settings", without("settings"), 2, "no field 'settings'"),
    ("R1 no global_rng", without("global_rng"), 2, "no field 'global_rng'"),
    ("R1 no history", without("history"), 2, "no field 'history'"),
    ("R1 optimizer_scalars a list", with_meta(optimizer_scalars=[1]), 2,
     "field 'optimizer_scalars' must be a JSON object"),
    ("R1 optimizer_scalars a str step", with_meta(optimizer_scalars={"0": {"step": "22"}}), 2,
     "field 'optimizer_scalars' must be"),
    ("R1 no step (optimizer_scalars empty)", with_meta(optimizer_scalars={}), 2,
     "tam.npz: the checkpoint's optimizer state does not fit this run: Adam.load_state_dict: the "
     "state of parameter 0 lacks ['step']"),
    ("R1 epoch '1'", with_meta(epoch="1"), 2, "field 'epoch' must be an integer >= 0"),
    ("R1 epoch -1", with_meta(epoch=-1), 2, "field 'epoch' must be an integer >= 0"),
    ("R1 epoch true", with_meta(epoch=True), 2, "field 'epoch' must be an integer >= 0"),
    ("R1 history shorter than epoch", with_meta(history=[]), 2,
     "field 'history' must be a list of one [loss, accuracy] pair per finished epoch"),
    ("R1 loader_rng garbage", with_meta(loader_rng={"x": 1}), 2,
     "field 'loader_rng' must be a NumPy generator state"),
    ("R1 model key missing", tampered(lambda z, m: (
        {k: v for k, v in z.items() if k != "model/layer1.weight"}, m)), 2,
     "tam.npz: the checkpoint's model state does not fit this run: Error(s) in loading state_dict "
     "for MLP:\n\tMissing key(s) in state_dict: \"layer1.weight\"."),
    ("R1 model key extra", tampered(lambda z, m: ({**z, "model/foo": np.ones(1)}, m)), 2,
     "Unexpected key(s) in state_dict: \"foo\"."),
    ("R1 optimizer entry not an index", tampered(lambda z, m: ({**z, "optimizer/x/exp_avg": np.ones(2)}, m)),
     2, "checkpoint entry 'optimizer/x/exp_avg' is not optimizer/<index>/<name>"),
]


@pytest.mark.parametrize("setup, code, phrase", [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_cli_refuses_cleanly(setup, code, phrase, tmp_path, ckpt):
    r = run_cli(*setup(tmp_path, ckpt), cwd=tmp_path)
    assert r.returncode == code, r.stderr
    assert phrase in r.stderr
    assert "Traceback" not in r.stderr and "traceback of rank" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 3  # one message (torch's state_dict one has 3)


def raise_key_error():
    raise KeyError("a bug, not the user's input")


def test_a_worker_keeps_its_traceback_for_a_bug_and_in_the_error_for_a_user_error():
    """R2: launch() puts a rank's traceback in the message only for errors outside USER_ERRORS."""
    from tinynorm import distributed as dist
    with pytest.raises(dist.WorkerError, match="traceback of rank 0:") as info:
        dist.launch(raise_key_error, 1, timeout=30)
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import distributed_workers as W
    with pytest.raises(dist.WorkerError, match="rank 1 failed: ValueError: boom") as info:
        dist.launch(W.fault, 2, args=("raise",), timeout=30)
    assert "traceback of rank" not in str(info.value)
    assert "ValueError: boom" in info.value.traceback


@pytest.mark.parametrize("change", [lambda m: [1], lambda m: {**m, "epoch": -1},
                                    lambda m: {**m, "settings": None}],
                         ids=["R1 load: meta a list", "R1 load: epoch -1", "R1 load: settings None"])
def test_checkpoint_load_names_the_file_and_the_field(change, tmp_path, ckpt):
    from tinynorm import checkpoint
    z = dict(np.load(ckpt))
    z["meta"] = np.frombuffer(json.dumps(change(json.loads(z["meta"].tobytes().decode()))).encode(),
                              np.uint8)
    np.savez(tmp_path / "bad.npz", **z)
    with pytest.raises(ValueError, match="bad.npz: corrupt checkpoint metadata"):
        checkpoint.load(tmp_path / "bad.npz")
