"""param_groups, optimizer and scheduler state_dicts, Adadelta/RMSprop/Adagrad and every
scheduler against torch (when installed), and their bad inputs."""
import math

import numpy as np
import pytest

import tinynorm as tn
from tinynorm import nn, optim
from tinynorm.optim import lr_scheduler as S


def _params(n=2, seed=0):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal((3, 2))) for _ in range(n)]


# ---- param_groups -----------------------------------------------------------------------------

def test_param_groups_take_per_group_values_and_defaults():
    a, b = _params()
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5, "weight_decay": 0.0}], lr=0.1,
                    momentum=0.9, weight_decay=1e-2)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-2, 0.0]
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["params"] == [b]
    a0, b0 = a.numpy().copy(), b.numpy().copy()
    a.grad, b.grad = tn.tensor(np.ones((3, 2))), tn.tensor(np.ones((3, 2)))
    opt.step()
    np.testing.assert_allclose(a.numpy(), a0 - 0.1 * (1 + 1e-2 * a0))
    np.testing.assert_allclose(b.numpy(), b0 - 0.5)


def test_no_weight_decay_on_norms_and_biases_as_scripts_write_it():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim == 1 else decay).append(p)
    opt = optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                      lr=1e-3)
    assert len(opt.param_groups[0]["params"]) == 2 and len(opt.param_groups[1]["params"]) == 4
    model(tn.tensor(np.ones((5, 3), np.float32))).sum().backward()
    opt.step()
    assert set(opt.state) == set(model.parameters())


def test_add_param_group_and_the_state_dict_numbering():
    a, b = _params()
    opt = optim.Adam([a], lr=0.01)
    opt.add_param_group({"params": [b], "lr": 0.1})
    for p in (a, b):
        p.grad = tn.tensor(np.ones((3, 2)))
    opt.step()
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1]
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert sd["param_groups"][1]["lr"] == 0.1 and sd["state"][1]["step"] == 1


def test_optimizer_state_dict_round_trip_through_tn_save_continues_bitwise(tmp_path):
    grads = [[np.random.default_rng(k).standard_normal((3, 2)) for _ in range(2)] for k in range(6)]

    def run(steps, resume=None):
        ps = _params(seed=1)
        opt = optim.Adam([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.05}], lr=0.01)
        sched = S.StepLR(opt, step_size=2, gamma=0.5)
        if resume is not None:
            for p, v in zip(ps, resume["params"]):
                p.data[...] = v
            opt.load_state_dict(resume["optimizer"])
            sched.load_state_dict(resume["scheduler"])
        for k in steps:
            for p, g in zip(ps, grads[k]):
                p.grad = tn.tensor(g)
            opt.step()
            sched.step()
        return ps, opt, sched

    whole, _, whole_sched = run(range(6))
    first, opt, sched = run(range(3))
    tn.save({"params": [p.data for p in first], "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    back = tn.load(tmp_path / "ckpt.pth")
    assert back["epoch"] == 3 and back["optimizer"]["param_groups"][1]["betas"] == (0.9, 0.999)
    second, opt2, sched2 = run(range(3, 6), resume=back)
    for p, q in zip(second, whole):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    assert sched2.get_last_lr() == whole_sched.get_last_lr() == [0.01 * 0.5 ** 3, 0.05 * 0.5 ** 3]


def test_load_state_dict_restores_hyperparameters_and_refuses_a_different_layout():
    a, b = _params()
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.3}], lr=0.1, momentum=0.9)
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = 0.02
    fresh = optim.SGD([{"params": [a]}, {"params": [b]}], lr=1.0, momentum=0.9)
    fresh.load_state_dict(sd)
    assert [g["lr"] for g in fresh.param_groups] == [0.02, 0.3]
    assert fresh.param_groups[0]["params"] == [a]
    with pytest.raises(ValueError, match="parameter groups"):
        optim.SGD([a, b], lr=0.1).load_state_dict(sd)


# ---- torch parity: optimizers -----------------------------------------------------------------

OPTIMIZERS = [
    ("Adadelta", dict()), ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1)),
    ("RMSprop", dict()), ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9)),
    ("Adagrad", dict()), ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1,
                                          initial_accumulator_value=0.5, eps=1e-8)),
    ("SGD", dict(lr=0.1, momentum=0.9, maximize=True)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, kw", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)])
def test_optimizers_match_torch_after_10_steps(name, kw, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = [rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal(3).astype(dtype)]
    ours = [nn.Parameter(w.copy()) for w in w0]
    theirs = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in w0]
    groups = lambda ps: [{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.05}]  # noqa: E731
    opt = getattr(optim, name)(groups(ours), **kw)
    ref = getattr(torch.optim, name)(groups(theirs), **kw)
    for _ in range(10):
        for p, q in zip(ours, theirs):
            g = rng.standard_normal(p.shape).astype(dtype)
            p.grad, q.grad = tn.tensor(g), torch.from_numpy(g.copy())
        opt.step()
        ref.step()
    for p, q in zip(ours, theirs):
        assert p.dtype == dtype
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=0, atol=1e-6)


# ---- torch parity: schedulers -----------------------------------------------------------------

def _sgd(lib, momentum=0.9):
    if lib == "tn":
        ps = _params()
        return optim.SGD([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.05}], lr=0.1, momentum=momentum)
    import torch
    ps = [torch.nn.Parameter(torch.zeros(3, 2)) for _ in range(2)]
    return torch.optim.SGD([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.05}], lr=0.1, momentum=momentum)


def _lambda(epoch):
    return 0.95 ** epoch


SCHEDULERS = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.3),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[5, 12, 12, 30], gamma=0.5),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.93),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=13, eta_min=1e-3),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lr_lambda=_lambda),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, lr_lambda=[_lambda, lambda e: 1 / (1 + e)]),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 0.2], total_steps=51),
    "OneCycleLR-linear-3phase": lambda m, o: m.OneCycleLR(o, max_lr=0.4, epochs=5, steps_per_epoch=11,
                                                          anneal_strategy="linear", three_phase=True),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=20),
    "SequentialLR": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=5),
                                                    m.CosineAnnealingLR(o, T_max=20)], milestones=[5]),
}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_scheduler_lr_sequence_equals_torch_over_50_steps(name):
    torch = pytest.importorskip("torch")
    ours_opt, theirs_opt = _sgd("tn"), _sgd("torch")
    ours = SCHEDULERS[name](S, ours_opt)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SCHEDULERS[name](torch.optim.lr_scheduler, theirs_opt)
        seq_ours, seq_theirs = [ours.get_last_lr()], [theirs.get_last_lr()]
        mom_ours = [[g["momentum"] for g in ours_opt.param_groups]]
        mom_theirs = [[g["momentum"] for g in theirs_opt.param_groups]]
        for _ in range(50):
            ours_opt.step()
            theirs_opt.step()
            ours.step()
            theirs.step()
            seq_ours.append(ours.get_last_lr())
            seq_theirs.append(theirs.get_last_lr())
            mom_ours.append([g["momentum"] for g in ours_opt.param_groups])
            mom_theirs.append([g["momentum"] for g in theirs_opt.param_groups])
    assert seq_ours == [[float(v) for v in lrs] for lrs in seq_theirs]
    assert mom_ours == mom_theirs
    assert [g["lr"] for g in ours_opt.param_groups] == seq_ours[-1]


def test_reduce_lr_on_plateau_equals_torch():
    torch = pytest.importorskip("torch")
    metrics = ([1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85, 0.7] * 5)[:50]
    for kw in [dict(patience=2), dict(mode="max", factor=0.5, patience=1, cooldown=2, min_lr=[0.01, 0.02]),
               dict(threshold_mode="abs", threshold=0.06, patience=0)]:
        ours_opt, theirs_opt = _sgd("tn"), _sgd("torch")
        ours = S.ReduceLROnPlateau(ours_opt, **kw)
        theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs_opt, **kw)
        for m in metrics:
            ours.step(m)
            theirs.step(m)
            assert ours.get_last_lr() == theirs.get_last_lr()


def test_adam_beta1_cycles_under_one_cycle_like_torch():
    torch = pytest.importorskip("torch")
    ours_opt = optim.Adam(_params(1), lr=0.1)
    theirs_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    ours, theirs = S.OneCycleLR(ours_opt, 0.3, total_steps=20), torch.optim.lr_scheduler.OneCycleLR(
        theirs_opt, 0.3, total_steps=20)
    for _ in range(19):
        ours_opt.step()
        theirs_opt.step()
        ours.step()
        theirs.step()
        assert ours_opt.param_groups[0]["betas"] == theirs_opt.param_groups[0]["betas"]
        assert ours.get_last_lr() == theirs.get_last_lr()


def test_scheduler_state_dict_resumes_the_sequence():
    opt = _sgd("tn")
    sched = S.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        sched.step()
    saved_opt, saved = opt.state_dict(), sched.state_dict()
    rest = []
    for _ in range(5):
        sched.step()
        rest.append(sched.get_last_lr())
    opt2 = _sgd("tn")
    opt2.load_state_dict(saved_opt)
    sched2 = S.CosineAnnealingLR(opt2, T_max=10, last_epoch=3)
    sched2.load_state_dict(saved)
    again = []
    for _ in range(5):
        sched2.step()
        again.append(sched2.get_last_lr())
    assert again == rest


def test_scheduler_closed_form_with_an_epoch_argument():
    opt = _sgd("tn")
    sched = S.StepLR(opt, step_size=3, gamma=0.5)
    sched.step(7)
    assert sched.get_last_lr() == [0.1 * 0.25, 0.05 * 0.25]


# ---- bad inputs -------------------------------------------------------------------------------

BAD = [
    ("scheduler on a non-optimizer", lambda: S.StepLR(object(), 3), TypeError, "object is not an Optimizer"),
    ("scheduler on a module", lambda: S.CosineAnnealingLR(nn.Linear(2, 2), 10), TypeError,
     "Linear is not an Optimizer"),
    ("StepLR step_size 0", lambda: S.StepLR(_sgd("tn"), 0), ValueError, "step_size"),
    ("CosineAnnealingLR T_max 0", lambda: S.CosineAnnealingLR(_sgd("tn"), 0), ValueError, "T_max"),
    ("ExponentialLR gamma nan", lambda: S.ExponentialLR(_sgd("tn"), math.nan), ValueError, "gamma"),
    ("LambdaLR not callable", lambda: S.LambdaLR(_sgd("tn"), 0.5), TypeError, "should be a function"),
    ("LambdaLR wrong count", lambda: S.LambdaLR(_sgd("tn"), [_lambda]), ValueError, "same length"),
    ("LinearLR start 0", lambda: S.LinearLR(_sgd("tn"), start_factor=0), ValueError, "Starting multiplicative"),
    ("OneCycleLR no total", lambda: S.OneCycleLR(_sgd("tn"), 0.1), ValueError, "total_steps"),
    ("OneCycleLR past the end", lambda: [s.step() for s in [S.OneCycleLR(_sgd("tn"), 0.1, total_steps=2)]
                                         for _ in range(3)], ValueError, "Tried to step 3 times"),
    ("OneCycleLR no momentum", lambda: S.OneCycleLR(optim.Adagrad(_params(1)), 0.1, total_steps=5),
     ValueError, "momentum or beta1"),
    ("SequentialLR milestones", lambda: S.SequentialLR(_sgd("tn"), [], []), ValueError, "at least one"),
    ("ReduceLROnPlateau factor 1", lambda: S.ReduceLROnPlateau(_sgd("tn"), factor=1.0), ValueError, "Factor"),
    ("ReduceLROnPlateau mode", lambda: S.ReduceLROnPlateau(_sgd("tn"), mode="up"), ValueError, "unknown"),
    ("ReduceLROnPlateau metric", lambda: S.ReduceLROnPlateau(_sgd("tn")).step("low"), TypeError, "number"),
    ("resume without initial_lr", lambda: S.StepLR(optim.SGD(_params(1), lr=0.1), 3, last_epoch=4), KeyError,
     "initial_lr"),
    ("Adadelta rho 2", lambda: optim.Adadelta(_params(1), rho=2.0), ValueError, "Invalid rho value: 2.0"),
    ("RMSprop alpha -1", lambda: optim.RMSprop(_params(1), alpha=-1), ValueError, "Invalid alpha value"),
    ("Adagrad lr_decay nan", lambda: optim.Adagrad(_params(1), lr_decay=math.nan), ValueError,
     "Invalid lr_decay value"),
    ("group lr negative", lambda: optim.SGD([{"params": _params(1), "lr": -1.0}], lr=0.1), ValueError,
     "Invalid learning rate: -1.0"),
    ("group without params", lambda: optim.SGD([{"lr": 0.1}], lr=0.1), ValueError, "'params' entry"),
    ("parameter in two groups", lambda: (lambda p: optim.SGD([{"params": p}, {"params": p}], lr=0.1))(_params(1)),
     ValueError, "more than one parameter group"),
    ("params as a set", lambda: optim.SGD(set(_params(1)), lr=0.1), TypeError, "ordered collections"),
    ("params as one dict", lambda: optim.SGD({"params": _params(1)}, lr=0.1), TypeError, "wrap a single group"),
]


@pytest.mark.parametrize("call, exc, phrase", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, phrase):
    with pytest.raises(exc, match=phrase):
        call()
