"""placement: BN before or after the ReLU (the BN paper puts it before; the seed article after)."""
from itertools import product

from ...norm_registry import PLACEMENTS
from ..stats import beyond_spread, fmt, mean_std
from .common import MODELS, Planned, Table, accuracies, side_by_side, spec, values, verdict

NAME = "placement"
CLAIM = ("Where BN goes: the BN paper normalizes the pre-activation (before the ReLU); the seed "
         "article says BN works better after the activation. The numbers decide.")
BATCH = 64


def rates(scale):
    return scale.pick((3e-4, 1e-3, 3e-3, 1e-2), (1e-3, 1e-2))


def epochs(scale):
    return scale.pick(8, 2)


def plan(scale):
    return [Planned({"model": model, "norm": "bn", "placement": placement, "lr": lr,
                     "batch_size": BATCH}, seed,
                    spec(scale, model, "bn", BATCH, seed, epochs(scale), lr=lr, optimizer="adam",
                         options={"placement": placement}))
            for model, placement, lr, seed in product(MODELS, PLACEMENTS, rates(scale), scale.seeds)]


def _wins(records, a, b, res):
    """The (model, lr) settings where placement ``a`` beats ``b`` beyond the spread, and all settings."""
    wins, settings = [], []
    for model in values(records, "model"):
        for lr in values(records, "lr", model=model):
            acc = {p: accuracies(records, model=model, lr=lr, placement=p) for p in (a, b)}
            if acc[a] and acc[b]:
                settings.append((model, lr))
                if beyond_spread(acc[a], acc[b], res):
                    wins.append((model, lr))
    return wins, settings


def verdicts(records, scale):
    res = 1 / scale.test_size
    out = []
    for a, b, source in (("after", "before", "the seed article"), ("before", "after", "the BN paper")):
        wins, settings = _wins(records, a, b, res)
        losses, _ = _wins(records, b, a, res)
        out.append(verdict(
            f"BN {a} the ReLU beats BN {b} it ({source}): better beyond the spread in at least "
            f"half of the (model, learning rate) settings and worse in none",
            bool(settings) and 2 * len(wins) >= len(settings) and not losses,
            f"{a} better in {len(wins)} of {len(settings)} settings, worse in {len(losses)}"
            + (f" ({', '.join(f'{m} lr {lr:g}' for m, lr in wins)})" if wins else "")))
    return out


def table(records, scale):
    t = Table(["model", "lr (Adam)", "acc% before ReLU", "acc% after ReLU"])
    for model in values(records, "model"):
        for lr in values(records, "lr", model=model):
            t.rows.append([model, f"{lr:g}"] + [
                fmt(accuracies(records, model=model, lr=lr, placement=p)) for p in ("before", "after")])
    return t


def plot(records, fig):
    for ax, model in side_by_side(records, fig):
        for p in ("before", "after"):
            lrs = sorted(values(records, "lr", model=model, placement=p))
            stats = [mean_std(accuracies(records, model=model, lr=lr, placement=p)) for lr in lrs]
            ax.errorbar(lrs, [100 * s[0] for s in stats], yerr=[100 * s[1] for s in stats],
                        marker="o", capsize=3, label=f"BN {p} ReLU")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (Adam)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(model)
        ax.legend(fontsize=8)
