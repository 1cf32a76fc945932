"""``tinynorm study``: BN's three defects and the norms that repair them, measured on digits.

Each experiment (see :mod:`tinynorm.study.experiments`) states a claim from the
articles the project grew from, plans the training runs that test it, and
computes its verdicts from the records those runs produce, so that a claim the
data does not support is reported as not holding. ``run_study`` trains every
distinct run once (experiments share runs), on worker processes with one Numba
thread each, and writes ``OUT/<experiment>.json``, ``OUT/<experiment>.png`` and
``OUT/summary.md``. The method is described in ``docs/study.md``.
"""
import os
import sys
import time

from .experiments import EXPERIMENTS
from .experiments.common import Scale
from .plots import PLOT_HINT, available, save_plot
from .report import document, records, summary, terminal, write_json
from .runs import ProgressBar, StudyError, run_all

__all__ = ["EXPERIMENTS", "run_study", "StudyError", "Scale"]


def run_study(names=None, seeds=3, quick=False, out="study", data=None, jobs=None, stream=None,
              progress_stream=None):
    """Run the named experiments (all when None); return {name: JSON document}."""
    stream = stream or sys.stdout
    names = list(names or EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown experiment(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(EXPERIMENTS)}")
    names = list(dict.fromkeys(names))
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds must be an integer >= 1, got {seeds!r}")
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs must be an integer >= 1, got {jobs!r}")
    from ..train import load_dataset
    (xtr, _), (xte, _) = load_dataset(data)
    scale = Scale(seeds=tuple(range(seeds)), quick=quick, data=data, train_size=len(xtr),
                  test_size=len(xte), jobs=jobs)
    os.makedirs(out, exist_ok=True)
    plans = {n: EXPERIMENTS[n].plan(scale) for n in names}
    started = time.perf_counter()
    results = run_all([p.spec for n in names for p in plans[n]], jobs,
                      ProgressBar(progress_stream or sys.stderr))
    plots = available()
    docs, sections = {}, []
    for n in names:
        exp = EXPERIMENTS[n]
        recs = records(plans[n], results)
        verdicts = exp.verdicts(recs, scale)
        table = exp.table(recs, scale)
        docs[n] = document(exp, recs, verdicts)
        write_json(os.path.join(out, f"{n}.json"), docs[n])
        plot = f"{n}.png" if plots and save_plot(exp, recs, os.path.join(out, f"{n}.png")) else None
        sections.append((exp, table, verdicts, plot))
        stream.write(terminal(exp, table, verdicts) + "\n")
    settings = (f"Settings: {seeds} seed(s){', --quick' if quick else ''}, data: "
                f"{data or 'the built-in digits'} ({len(xtr)} train / {len(xte)} test images). "
                "Tables show mean ± std over seeds. Method: docs/study.md.")
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(summary(sections, settings))
    if not plots:
        stream.write(PLOT_HINT + "\n")
    stream.write(f"wrote {len(names)} experiment(s) to {out}/ (summary.md) in "
                 f"{time.perf_counter() - started:.0f} s\n")
    return docs
