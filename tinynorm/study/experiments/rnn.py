"""rnn: recurrent BN and LN fit recurrent nets, where BN's shared statistics do not
(Cooijmans et al. 2016; Ba et al. 2016)."""
from ..runs import SEQUENCE_PAD
from ..stats import beyond_spread, first_step_reaching, fmt, mean_std
from .common import Planned, Table, accuracies, select, side_by_side, spec, values, verdict

NAME = "rnn"
CLAIM = ("BN fits recurrent nets badly (defect 2); recurrent BN (BN-LSTM, statistics per time "
         "step) and LN (LN-LSTM) answer it: on digits read one pixel per step, in order and "
         "permuted, BN-LSTM reaches LSTM's final accuracy in fewer steps (Cooijmans et al.: "
         "sequential MNIST 98.9% LSTM vs 99.0% BN-LSTM, permuted 90.2% vs 95.4%, BN-LSTM faster). "
         "BN-LSTM is tested with population statistics recomputed over the training set (the BN "
         "paper's inference rule), and with its running averages as a second row.")
NORMS = {"none": "none", "bn": "bn", "lnlstm": "ln"}
ORDERS = ("in-order", "permuted")
BATCH = 64
LR = 3e-3
LENGTH = 64


def epochs(scale):
    return scale.pick(10, 1)


def curve_every(scale):
    return scale.train_size // BATCH


def plan(scale):
    out = []
    for norm, train_norm in NORMS.items():
        for order in scale.pick(ORDERS, ORDERS[:1]):
            for seed in scale.seeds:
                extra = {"bn_stats": "population"} if norm == "bn" else {}
                run = spec(scale, "lstm", train_norm, BATCH, seed, epochs(scale), lr=LR,
                           optimizer="adam", pixels=True, permuted=order == "permuted",
                           curve_every=curve_every(scale), **extra)
                params = {"model": "lstm", "norm": norm, "order": order, "batch_size": BATCH}
                if norm == "bn":
                    params["stats"] = "population"
                out.append(Planned(dict(params, length=LENGTH), seed, run))
                out.append(Planned(dict(params, length=LENGTH + SEQUENCE_PAD), seed, run,
                                   field="padded_accuracy"))
                if norm == "bn":
                    out.append(Planned(dict(params, length=LENGTH, stats="running"), seed, run,
                                       field="running_stats_accuracy"))
    return out


def _main(records, norm, order, length=LENGTH):
    """The records of ``norm`` at ``length``; BN-LSTM's measured with population statistics."""
    return [r for r in select(records, norm=norm, order=order, length=length)
            if r["params"].get("stats") != "running"]


def _acc(records, norm, order, length=LENGTH):
    return [r["test_accuracy"] for r in _main(records, norm, order, length)]


def _steps_to(records, norm, order, target):
    """Per seed: the first curve step at which ``norm`` reaches ``target`` (runs that never do
    count one curve interval past their last step)."""
    out = []
    for r in _main(records, norm, order):
        curve = r["curve"]
        step = first_step_reaching(curve, target)
        if step is None:
            last = curve[-1]["step"] if curve else 0
            step = last + (curve[-1]["step"] - curve[-2]["step"] if len(curve) > 1 else 1)
        out.append(step)
    return out


def _interval(records):
    for r in records:
        if len(r["curve"]) > 1:
            return r["curve"][1]["step"] - r["curve"][0]["step"]
    return 1


def verdicts(records, scale):
    res, interval = 1 / scale.test_size, _interval(records)
    out = []
    for order in values(records, "order"):
        target = mean_std(_acc(records, "none", order))[0]
        lstm = _steps_to(records, "none", order, target)
        for norm, name in (("bn", "BN-LSTM"), ("lnlstm", "LN-LSTM")):
            steps = _steps_to(records, norm, order, target)
            if not steps:
                continue
            out.append(verdict(
                f"{order}: {name} reaches LSTM's final accuracy ({100 * target:.1f}%) in fewer "
                "steps, beyond the spread", beyond_spread(lstm, steps, interval),
                f"steps to {100 * target:.1f}%: LSTM {fmt(lstm, 1, 0)}, {name} {fmt(steps, 1, 0)} "
                f"(curve every {interval} steps)"))
    for norm, name in (("bn", "BN-LSTM"), ("lnlstm", "LN-LSTM")):
        for order in values(records, "order"):
            short = _acc(records, norm, order)
            long = _acc(records, norm, order, LENGTH + SEQUENCE_PAD)
            if not short:
                continue
            out.append(verdict(
                f"{order}: {name} keeps its accuracy on sequences twice as long as any in training "
                f"({SEQUENCE_PAD} blank pixels first), within the spread",
                not beyond_spread(short, long, res),
                f"{name} {fmt(short)} at {LENGTH} steps, {fmt(long)} at "
                f"{LENGTH + SEQUENCE_PAD}; LSTM "
                f"{fmt(_acc(records, 'none', order, LENGTH + SEQUENCE_PAD))}"))
    for order in values(records, "order"):
        ema = accuracies(records, norm="bn", order=order, stats="running")
        if ema:
            out.append(verdict(
                f"{order}: BN-LSTM's running averages (momentum 0.1) lag its population "
                "statistics: lower test accuracy beyond the spread",
                beyond_spread(_acc(records, "bn", order), ema, res),
                f"BN-LSTM {fmt(_acc(records, 'bn', order))} with population statistics, "
                f"{fmt(ema)} with running averages"))
    return out


def table(records, scale):
    lengths = values(records, "length")
    t = Table(["order", "model"] + [f"acc% {n} steps" for n in lengths])
    names = {"none": "LSTM", "bn": "BN-LSTM", "lnlstm": "LN-LSTM"}
    for order in values(records, "order"):
        for norm in values(records, "norm", order=order):
            t.rows.append([order, names.get(norm, norm)] + [
                fmt(_acc(records, norm, order, n)) for n in lengths])
            ema = accuracies(records, norm=norm, order=order, stats="running")
            if ema:
                t.rows.append([order, f"{names.get(norm, norm)} (running averages)", fmt(ema)]
                              + ["-"] * (len(lengths) - 1))
    return t


def plot(records, fig):
    import numpy as np
    names = {"none": "LSTM", "bn": "BN-LSTM", "lnlstm": "LN-LSTM"}
    for ax, order in side_by_side(records, fig, "order"):
        for norm in values(records, "norm", order=order):
            curves = [r["curve"] for r in _main(records, norm, order)]
            n = min(len(c) for c in curves)
            steps = [p["step"] for p in curves[0][:n]]
            acc = 100 * np.array([[p["test_accuracy"] for p in c[:n]] for c in curves])
            mean, std = acc.mean(axis=0), acc.std(axis=0, ddof=1) if len(curves) > 1 else 0 * acc[0]
            ax.plot(steps, mean, label=names.get(norm, norm))
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
        ax.set_xlabel("training step")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"pixel by pixel, {order}")
        ax.legend(fontsize=8)
