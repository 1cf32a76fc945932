"""non-iid: BN degrades when minibatches are not i.i.d.; Batch Renorm less so (Ioffe 2017, 4.3)."""
from itertools import product

from ..stats import beyond_spread, fmt, mean_std
from .common import MODELS, Planned, Table, accuracies, select, side_by_side, spec, values, verdict

NAME = "non-iid"
CLAIM = ("BN degrades when minibatches are not i.i.d. (defect 3), and Batch Renorm degrades less "
         "(BRN paper: each batch of 32 holds 16 pairs of same-label images; ImageNet top-1 BN "
         "about 67% against BRN about 76.5%).")
NORMS = ("bn", "brn", "gn")
BATCH = 32


def epochs(scale):
    return scale.pick(4, 1)


def plan(scale):
    return [Planned({"model": model, "norm": norm, "batch_size": BATCH, "batches": batches}, seed,
                    spec(scale, model, norm, BATCH, seed, epochs(scale),
                         **({"batches": "non-iid"} if batches == "non-iid" else {})))
            for model, norm, batches, seed in product(MODELS, NORMS, ("iid", "non-iid"), scale.seeds)]


def _losses(records, model, norm):
    """Per seed: i.i.d. accuracy minus non-i.i.d. accuracy (what the pairing costs)."""
    acc = {}
    for r in select(records, model=model, norm=norm):
        acc.setdefault(r["seed"], {})[r["params"]["batches"]] = r["test_accuracy"]
    return [a["iid"] - a["non-iid"] for a in acc.values() if len(a) == 2]


def verdicts(records, scale):
    res = 1 / scale.test_size
    out = []
    for model in values(records, "model"):
        iid = accuracies(records, model=model, norm="bn", batches="iid")
        pairs = accuracies(records, model=model, norm="bn", batches="non-iid")
        out.append(verdict(f"{model}: BN loses accuracy on non-i.i.d. batches, beyond the spread",
                           beyond_spread(iid, pairs, res),
                           f"BN i.i.d. {fmt(iid)}, non-i.i.d. {fmt(pairs)}"))
        bn, brn = _losses(records, model, "bn"), _losses(records, model, "brn")
        out.append(verdict(f"{model}: BRN loses less than BN on non-i.i.d. batches, beyond the "
                           "spread", beyond_spread(bn, brn, res),
                           f"accuracy lost: BN {fmt(bn, unit=' pt')}, BRN {fmt(brn, unit=' pt')}, "
                           f"GN {fmt(_losses(records, model, 'gn'), unit=' pt')}"))
    return out


def table(records, scale):
    t = Table(["model", "norm", "acc% i.i.d.", "acc% non-i.i.d.", "lost (pt)"])
    for model in values(records, "model"):
        for norm in values(records, "norm", model=model):
            t.rows.append([model, norm,
                           fmt(accuracies(records, model=model, norm=norm, batches="iid")),
                           fmt(accuracies(records, model=model, norm=norm, batches="non-iid")),
                           fmt(_losses(records, model, norm))])
    return t


def plot(records, fig):
    import numpy as np
    for ax, model in side_by_side(records, fig):
        norms = values(records, "norm", model=model)
        for j, batches in enumerate(("iid", "non-iid")):
            stats = [mean_std(accuracies(records, model=model, norm=n, batches=batches)) for n in norms]
            ax.bar(np.arange(len(norms)) + 0.4 * j, [100 * s[0] for s in stats], 0.4,
                   yerr=[100 * s[1] for s in stats], label=batches)
        ax.set_xticks(np.arange(len(norms)) + 0.2, norms)
        ax.set_ylim(max(0, 100 * min(accuracies(records, model=model)) - 5), 100)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{model}, batch {BATCH}")
        ax.legend(fontsize=8)
