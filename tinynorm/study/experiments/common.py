"""What every experiment shares: the sizes of a run, the training recipe, records and tables.

The recipe (one rule for every experiment that does not vary it): SGD with
momentum 0.9, learning rate ``BASE_LR * batch / 32`` (the GN paper's linear
scaling with the batch, anchored at 0.02 for batch 32), the digits' 1,437
training images each epoch in shuffled batches, the test accuracy on the 360
test images at the end of every epoch. Batch Renorm's schedule keeps the
proportions of ``tinynorm train``'s default for its 440-step run (rmax = 1,
dmax = 0 for the first 100/440 of the run, then rmax reaches 3 at 400/440 and
dmax reaches 5 at 250/440), scaled to each run's length.
"""
from dataclasses import dataclass, field

from ...norm_registry import FEED_FORWARD

MODELS = FEED_FORWARD
BASE_LR = 0.02
BASE_BATCH = 32


@dataclass
class Scale:
    """The sizes of a study: seeds, epochs, and the points each experiment sweeps."""
    seeds: tuple = (0, 1, 2)
    quick: bool = False
    data: str = None
    train_size: int = 1437
    test_size: int = 360
    jobs: int = 1

    def pick(self, full, quick):
        return quick if self.quick else full


@dataclass
class Planned:
    """One record an experiment will write: its params, seed, the run that makes it, and which
    accuracy of that run's results it reports."""
    params: dict
    seed: int
    spec: dict
    field: str = "test_accuracy"


def linear_lr(batch_size):
    return BASE_LR * batch_size / BASE_BATCH


def spec(scale, model, norm, batch_size, seed, epochs, lr=None, optimizer="sgd", momentum=0.9,
         options=None, **extra):
    """The ``train()`` settings of one run under the shared recipe."""
    options = dict(options or {})
    if norm == "brn":
        steps = epochs * (scale.train_size // batch_size)
        options["renorm_schedule"] = (steps * 100 // 440, steps * 400 // 440, steps * 250 // 440)
    out = dict(model=model, norm=norm, batch_size=batch_size, epochs=epochs, seed=seed,
               lr=linear_lr(batch_size) if lr is None else lr, optimizer=optimizer,
               data=scale.data, curve_every=0, options=options)
    if optimizer == "sgd":
        out["momentum"] = momentum
    out.update(extra)
    return out


def select(records, **params):
    """The records whose params include every given key=value."""
    return [r for r in records if all(r["params"].get(k) == v for k, v in params.items())]


def accuracies(records, **params):
    return [r["test_accuracy"] for r in select(records, **params)]


def values(records, key, **params):
    """The distinct values of param ``key`` among the selected records, in first-seen order."""
    out = []
    for r in select(records, **params):
        if r["params"].get(key) not in out:
            out.append(r["params"].get(key))
    return out


def side_by_side(records, fig, key="model"):
    """One subplot per distinct value of param ``key``, side by side: [(axes, value), ...]."""
    names = values(records, key)
    return [(fig.add_subplot(1, len(names), i + 1), name) for i, name in enumerate(names)]


def verdict(claim, holds, evidence):
    return {"claim": claim, "holds": bool(holds), "evidence": evidence}


@dataclass
class Table:
    """A table of strings: a header row and body rows, shown on the terminal and in markdown."""
    header: list
    rows: list = field(default_factory=list)

    def markdown(self):
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def text(self):
        cells = [self.header] + [[str(c) for c in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.header))]
        fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths))  # noqa: E731
        return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells[1:]])
