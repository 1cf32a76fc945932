"""lr: BN allows larger learning rates and converges faster (Ioffe & Szegedy 2015, section 3.3)."""
from itertools import product

from ..stats import beyond_spread, first_epoch_reaching, fmt, mean_std
from .common import MODELS, Planned, Table, accuracies, select, side_by_side, spec, values, verdict

NAME = "lr"
CLAIM = ("BN allows larger learning rates and converges faster: with plain SGD, BN trains well at "
         "learning rates where the same net without it fails, and reaches 95% test accuracy in "
         "fewer epochs.")
TARGET = 0.95
WELL = 0.90
FAILED = 0.50
BATCH = 64


def rates(scale):
    return scale.pick((0.01, 0.03, 0.1, 0.3, 1.0, 3.0), (0.03, 0.3, 3.0))


def epochs(scale):
    return scale.pick(8, 2)


def plan(scale):
    return [Planned({"model": model, "norm": norm, "lr": lr, "batch_size": BATCH}, seed,
                    spec(scale, model, norm, BATCH, seed, epochs(scale), lr=lr, momentum=0.0,
                         stop_on_nonfinite=True))
            for model, norm, lr, seed in product(MODELS, ("bn", "none"), rates(scale), scale.seeds)]


def diverged(record):
    """A run diverged when a training loss on its curve was not finite (written as null)."""
    return any(p["train_loss"] is None for p in record["curve"])


def _epochs_to_target(records, horizon):
    """Per run: the first epoch ending at >= 95% test accuracy (``horizon + 1`` if none did)."""
    return [first_epoch_reaching(r["curve"], TARGET) or horizon + 1 for r in records]


def _fails(rs):
    return any(diverged(r) for r in rs) or mean_std([r["test_accuracy"] for r in rs])[0] < FAILED


def verdicts(records, scale):
    res = 1 / scale.test_size
    out = []
    for model in values(records, "model"):
        rescued = []
        for lr in values(records, "lr", model=model):
            bn, none = select(records, model=model, norm="bn", lr=lr), select(records, model=model,
                                                                               norm="none", lr=lr)
            if bn and none and _fails(none) and not any(diverged(r) for r in bn) \
                    and mean_std([r["test_accuracy"] for r in bn])[0] >= WELL:
                rescued.append(lr)
        out.append(verdict(
            f"{model}: BN trains well (>= {100 * WELL:.0f}%, no divergence) at a learning rate "
            f"where the net without a norm fails (diverges or < {100 * FAILED:.0f}%)", bool(rescued),
            f"such learning rates: {', '.join(f'{lr:g}' for lr in rescued) or 'none'}"))
        horizon = max(r["curve"][-1]["epoch"] for r in select(records, model=model) if r["curve"])
        best = {}
        for norm in ("bn", "none"):
            per_seed = {}
            for r in select(records, model=model, norm=norm):
                e = _epochs_to_target([r], horizon)[0]
                per_seed[r["seed"]] = min(per_seed.get(r["seed"], e), e)
            best[norm] = list(per_seed.values())
        out.append(verdict(
            f"{model}: at its best learning rate BN reaches {100 * TARGET:.0f}% in fewer epochs "
            "than the net without a norm at its own, beyond the spread",
            beyond_spread(best["none"], best["bn"], 1),
            f"epochs to {100 * TARGET:.0f}% ({horizon + 1} = never): BN {fmt(best['bn'], 1, 1)}, "
            f"none {fmt(best['none'], 1, 1)}"))
    return out


def table(records, scale):
    t = Table(["model", "norm", "lr", "acc%", f"epochs to {100 * TARGET:.0f}%", "diverged"])
    for model in values(records, "model"):
        horizon = max(r["curve"][-1]["epoch"] for r in select(records, model=model) if r["curve"])
        for norm in values(records, "norm", model=model):
            for lr in values(records, "lr", model=model, norm=norm):
                rs = select(records, model=model, norm=norm, lr=lr)
                reached = [first_epoch_reaching(r["curve"], TARGET) for r in rs]
                hit = [e for e in reached if e is not None]
                t.rows.append([model, norm, f"{lr:g}", fmt([r["test_accuracy"] for r in rs]),
                               (f"{fmt(hit, 1, 1)} ({len(hit)}/{len(rs)} runs)" if hit else
                                f"not in {horizon}"),
                               f"{sum(diverged(r) for r in rs)}/{len(rs)}"])
    return t


def plot(records, fig):
    for ax, model in side_by_side(records, fig):
        for norm in values(records, "norm", model=model):
            lrs = sorted(values(records, "lr", model=model, norm=norm))
            acc = [100 * mean_std(accuracies(records, model=model, norm=norm, lr=lr))[0] for lr in lrs]
            line, = ax.plot(lrs, acc, marker="o", label=norm)
            bad = [lr for lr in lrs if any(diverged(r) for r in
                                           select(records, model=model, norm=norm, lr=lr))]
            if bad:
                ax.plot(bad, [acc[lrs.index(lr)] for lr in bad], "x", ms=10, color=line.get_color(),
                        label=f"{norm} diverged")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (plain SGD)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(model)
        ax.legend(fontsize=8)
