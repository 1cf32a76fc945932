"""batch-size: BN degrades when the batch is small; GN and LN do not (Wu & He 2018, figure 1)."""
from itertools import product

from ..plots import log2_batch_axis
from ..stats import beyond_spread, fmt, mean_std
from .common import Planned, Table, accuracies, select, side_by_side, spec, values, verdict

NAME = "batch-size"
CLAIM = ("BN degrades when the batch per device is small (defect 1): its error rises from batch "
         "32 to batch 2 by more than GN's and LN's do (GN paper: ResNet-50 on ImageNet, BN 23.6% "
         "-> 34.7%, GN flat at 24.1%).")
MODEL_NORMS = {"mlp": ("bn", "brn", "cbn", "gn", "ln", "rms", "none"),
               "cnn": ("bn", "brn", "cbn", "gn", "ln", "rms", "in", "frn", "none")}
FIXES = ("brn", "cbn", "rms", "in", "frn")


def batch_sizes(scale):
    return scale.pick((32, 16, 8, 4, 2), (32, 2))


def epochs(scale):
    return scale.pick(4, 1)


def plan(scale):
    return [Planned({"model": model, "norm": norm, "batch_size": b}, seed,
                    spec(scale, model, norm, b, seed, epochs(scale)))
            for model, norms in MODEL_NORMS.items()
            for norm, b, seed in product(norms, batch_sizes(scale), scale.seeds)]


def _rises(records, model, norm):
    """Per seed: error at the smallest batch minus error at the largest (a positive rise is worse)."""
    sizes = values(records, "batch_size", model=model)
    small, large = min(sizes), max(sizes)
    by_seed = {}
    for r in select(records, model=model, norm=norm):
        by_seed.setdefault(r["seed"], {})[r["params"]["batch_size"]] = 1 - r["test_accuracy"]
    return [e[small] - e[large] for e in by_seed.values() if small in e and large in e], small, large


def verdicts(records, scale):
    res = 1 / scale.test_size
    out = []
    for model in values(records, "model"):
        bn, small, large = _rises(records, model, "bn")
        gn, _, _ = _rises(records, model, "gn")
        ln, _, _ = _rises(records, model, "ln")
        holds = beyond_spread(bn, gn, res) and beyond_spread(bn, ln, res)
        out.append(verdict(
            f"{model}: BN's test error rises from batch {large} to batch {small} by more than "
            f"GN's and LN's do, beyond the spread",
            holds, f"rise of the error from batch {large} to {small}: BN {fmt(bn, unit=' pt')}, "
                   f"GN {fmt(gn, unit=' pt')}, LN {fmt(ln, unit=' pt')}"))
        for norm in FIXES:
            rise, _, _ = _rises(records, model, norm)
            if not rise:
                continue
            out.append(verdict(
                f"{model}: {norm.upper()}'s error rises from batch {large} to {small} by less "
                f"than BN's, beyond the spread", beyond_spread(bn, rise, res),
                f"rise: {norm.upper()} {fmt(rise, unit=' pt')}, BN {fmt(bn, unit=' pt')}"))
    return out


def table(records, scale):
    sizes = values(records, "batch_size")
    t = Table(["model", "norm"] + [f"err% b={b}" for b in sizes])
    for model in values(records, "model"):
        for norm in values(records, "norm", model=model):
            t.rows.append([model, norm] + [
                fmt([1 - a for a in accuracies(records, model=model, norm=norm, batch_size=b)])
                for b in sizes])
    return t


def plot(records, fig):
    for ax, model in side_by_side(records, fig):
        for norm in values(records, "norm", model=model):
            sizes = sorted(values(records, "batch_size", model=model, norm=norm))
            err = [100 * (1 - mean_std(accuracies(records, model=model, norm=norm,
                                                  batch_size=b))[0]) for b in sizes]
            ax.plot(sizes, err, marker="o", label=norm, lw=2.2 if norm in ("bn", "gn", "ln") else 1)
        log2_batch_axis(ax, values(records, "batch_size", model=model))
        ax.set_xlabel("batch size (images per device)")
        ax.set_ylabel("test error (%)")
        ax.set_title(model)
        ax.legend(fontsize=7, ncol=2)
