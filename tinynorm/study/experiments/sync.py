"""sync: cross-device (synchronized) BN repairs small per-device batches (MegDet, Peng et al. 2018)."""
from ..stats import beyond_spread, differ, fmt
from .batch_size import epochs
from .common import MODELS, Planned, Table, select, spec, values, verdict

NAME = "sync"
CLAIM = ("Synchronized BN over k devices with b = 2 images each computes BN over all k*b images "
         "(the same math as one device at batch k*b), and both beat per-device BN, whose "
         "statistics see only b images (MegDet).")
PER_DEVICE = 2
MODES = ("per-device", "sync", "single")
FIRST_POINT = 25
LOSS_RTOL = 1e-4


def device_counts(scale):
    return scale.pick((2, 4), (2,))


def plan(scale):
    out = []
    for model in MODELS:
        for k in device_counts(scale):
            batch = k * PER_DEVICE
            for mode in MODES:
                for seed in scale.seeds:
                    extra = {"curve_every": FIRST_POINT}
                    if mode != "single":
                        extra.update(workers=k, sync_bn=mode == "sync")
                    devices = 1 if mode == "single" else k
                    out.append(Planned(
                        {"model": model, "norm": "bn", "batch_size": batch // devices,
                         "devices": devices, "mode": mode}, seed,
                        spec(scale, model, "bn", batch, seed, epochs(scale), **extra)))
    return out


def _group(records, model, batch, mode):
    """The records of ``mode`` whose devices together hold ``batch`` images."""
    return [r for r in select(records, model=model, mode=mode)
            if r["params"]["batch_size"] * r["params"]["devices"] == batch]


def _acc(records, model, batch, mode):
    return [r["test_accuracy"] for r in _group(records, model, batch, mode)]


def _first_losses(records, model, batch, mode):
    return {r["seed"]: r["curve"][0]["train_loss"] for r in _group(records, model, batch, mode)
            if r["curve"]}


def _device_counts(records, model):
    return values(records, "devices", model=model, mode="sync")


def verdicts(records, scale):
    """Equal means: not different beyond the spread, where a gap of one test image does not count
    (rounding alone moves a trajectory that far); the training loss over the first 25 steps,
    before rounding differences have grown, must agree to 1e-4."""
    res = 1 / scale.test_size
    same, better, same_ev, better_ev = True, True, [], []
    for model in values(records, "model"):
        for k in _device_counts(records, model):
            acc = {m: _acc(records, model, k * PER_DEVICE, m) for m in MODES}
            if not all(acc.values()):
                continue
            first = {m: _first_losses(records, model, k * PER_DEVICE, m) for m in ("sync", "single")}
            gaps = [abs(first["sync"][s] - first["single"][s]) / abs(first["single"][s])
                    for s in first["sync"] if s in first["single"] and first["single"][s]]
            loss_ok = bool(gaps) and max(gaps) <= LOSS_RTOL
            same &= loss_ok and not differ(acc["sync"], acc["single"], 2 * res)
            same_ev.append(f"{model} k={k}: sync {fmt(acc['sync'])}, single {fmt(acc['single'])}, "
                           f"loss over steps 1-{FIRST_POINT} rel. gap "
                           f"{max(gaps) if gaps else float('nan'):.1e}")
            better &= (beyond_spread(acc["sync"], acc["per-device"], res)
                       and beyond_spread(acc["single"], acc["per-device"], res))
            better_ev.append(f"{model} k={k}: per-device {fmt(acc['per-device'])}")
    return [
        verdict("sync equals single: the same test accuracy within the spread, and the same "
                f"training loss over the first {FIRST_POINT} steps to {LOSS_RTOL:g} relative",
                same and bool(same_ev),
                "; ".join(same_ev)),
        verdict("sync and single both beat per-device BN beyond the spread, at every k",
                better and bool(better_ev), "; ".join(better_ev)),
    ]


def table(records, scale):
    t = Table(["model", "devices k", "batch k*b"] + [f"acc% {m}" for m in MODES])
    for model in values(records, "model"):
        for k in _device_counts(records, model):
            t.rows.append([model, k, k * PER_DEVICE] + [
                fmt(_acc(records, model, k * PER_DEVICE, m)) for m in MODES])
    return t


def plot(records, fig):
    import numpy as np
    from ..stats import mean_std
    ax = fig.add_subplot(1, 1, 1)
    groups = [(m, k) for m in values(records, "model") for k in _device_counts(records, m)]
    width = 0.8 / len(MODES)
    for j, mode in enumerate(MODES):
        stats = [mean_std(_acc(records, m, k * PER_DEVICE, mode)) for m, k in groups]
        ax.bar(np.arange(len(groups)) + j * width, [100 * s[0] for s in stats], width,
               yerr=[100 * s[1] for s in stats], label=mode)
    ax.set_xticks(np.arange(len(groups)) + width, [f"{m}, k={k}" for m, k in groups])
    ax.set_ylabel("test accuracy (%)")
    lows = [100 * min(a for mode in MODES for a in _acc(records, m, k * PER_DEVICE, mode))
            for m, k in groups]
    ax.set_ylim(max(0, min(lows) - 5), 100)
    ax.legend(fontsize=8)
