"""train-eval: the gap between BN in training (batch statistics) and in inference (running
statistics) that lies behind defects 1 and 3; Batch Renorm is built to close it."""
from itertools import product

from ..plots import log2_batch_axis
from ..stats import beyond_spread, fmt, mean_std
from .batch_size import batch_sizes, epochs
from .common import MODELS, Planned, Table, accuracies, select, side_by_side, spec, values, verdict

NAME = "train-eval"
CLAIM = ("BN computes different functions in training (batch statistics) and in inference "
         "(running statistics); the gap between them grows as the batch shrinks, and Batch Renorm "
         "(trained to match inference) narrows it.")
NORMS = ("bn", "brn")


def plan(scale):
    out = []
    for model, norm, b, seed in product(MODELS, NORMS, batch_sizes(scale), scale.seeds):
        run = spec(scale, model, norm, b, seed, epochs(scale))
        params = {"model": model, "norm": norm, "batch_size": b}
        out.append(Planned(dict(params, stats="running"), seed, run))
        out.append(Planned(dict(params, stats="batch"), seed, run, field="batch_stats_accuracy"))
    return out


def _gaps(records, model, norm, batch):
    """Per seed: |accuracy with batch statistics - accuracy with running statistics|."""
    acc = {}
    for r in select(records, model=model, norm=norm, batch_size=batch):
        acc.setdefault(r["seed"], {})[r["params"]["stats"]] = r["test_accuracy"]
    return [abs(a["batch"] - a["running"]) for a in acc.values() if len(a) == 2]


def verdicts(records, scale):
    res = 1 / scale.test_size
    out = []
    for model in values(records, "model"):
        sizes = values(records, "batch_size", model=model)
        small, large = min(sizes), max(sizes)
        bn_small, bn_large = _gaps(records, model, "bn", small), _gaps(records, model, "bn", large)
        out.append(verdict(
            f"{model}: BN's gap between batch and running statistics is wider at batch {small} "
            f"than at batch {large}, beyond the spread", beyond_spread(bn_small, bn_large, res),
            f"|batch - running| accuracy: {fmt(bn_small, unit=' pt')} at batch {small}, "
            f"{fmt(bn_large, unit=' pt')} at {large}"))
        brn_small = _gaps(records, model, "brn", small)
        out.append(verdict(
            f"{model}: at batch {small}, BRN's gap is narrower than BN's, beyond the spread",
            beyond_spread(bn_small, brn_small, res),
            f"gap at batch {small}: BN {fmt(bn_small, unit=' pt')}, BRN {fmt(brn_small, unit=' pt')}"))
    return out


def table(records, scale):
    sizes = values(records, "batch_size")
    t = Table(["model", "norm", "stats"] + [f"acc% b={b}" for b in sizes])
    for model in values(records, "model"):
        for norm in values(records, "norm", model=model):
            for stats in ("running", "batch"):
                t.rows.append([model, norm, stats] + [
                    fmt(accuracies(records, model=model, norm=norm, stats=stats, batch_size=b))
                    for b in sizes])
    return t


def plot(records, fig):
    for ax, model in side_by_side(records, fig):
        for j, norm in enumerate(values(records, "norm", model=model)):
            for stats, style in (("running", "-"), ("batch", "--")):
                sizes = sorted(values(records, "batch_size", model=model, norm=norm))
                acc = [100 * mean_std(accuracies(records, model=model, norm=norm, stats=stats,
                                                 batch_size=b))[0] for b in sizes]
                ax.plot(sizes, acc, style, color=f"C{j}", marker="o", label=f"{norm}, {stats} stats")
        log2_batch_axis(ax, values(records, "batch_size", model=model))
        ax.set_xlabel("batch size")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(model)
        ax.legend(fontsize=7)
