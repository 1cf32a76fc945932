"""One study run (a ``tinynorm.train`` call plus the evaluations the study reads), and the pool
that runs many of them.

A run is a plain dict of ``train()`` settings, so it pickles, hashes and
prints; its key (the canonical JSON of the dict) lets experiments share
runs: batch-size, train-eval, sync and non-iid ask for some of the same ones,
and each is trained once per ``tinynorm study`` call.

Every run trains with one Numba thread, in a worker process of its own pool
(also with ``jobs=1``), and reseeds every generator it uses from its settings,
so a result does not depend on which worker ran it, in what order, or on how
many workers there were: ``--jobs 2`` and ``--jobs 1`` give bitwise the same
results. Runs with ``workers > 1`` spawn their own ranks, one thread each.
"""
import concurrent.futures as cf
import contextlib
import copy
import json
import math
import multiprocessing as mp
import os
import sys
import time

import numpy as np

SEQUENCE_PAD = 64


def run_key(spec):
    return json.dumps(spec, sort_keys=True)


def run_cost(spec, train_size=1437):
    """The estimated seconds of ``spec`` on one thread (optimizer steps times a per-step cost fitted
    to a default study), for the ETA and for starting the longest runs first."""
    b = spec["batch_size"]
    steps = spec["epochs"] * max(1, train_size // b)
    per_step = {"mlp": 0.8 + 0.013 * b, "cnn": 1.5 + 0.2 * b,
                "lstm": (180.0 + 1.8 * b) if spec.get("pixels") else (30.0 + 0.3 * b)}[spec["model"]]
    if spec.get("norm") == "cbn":
        per_step *= 1.5
    if spec.get("bn_stats") == "population":
        per_step *= 2.5
    workers = spec.get("workers", 1)
    if workers > 1:
        per_step = 2.5 * per_step + 0.5 * workers
    return (steps * per_step + (3000.0 * workers if workers > 1 else 0.0)) / 1000.0


def execute(spec):
    """Train ``spec`` and return what the experiments read: test accuracy, curve, divergence,
    and for BN/BRN the accuracy with batch statistics, for the LSTM on padded sequences."""
    import numba
    if numba.get_num_threads() != 1:
        numba.set_num_threads(1)
    from ..models import NormOptions
    from ..train import evaluate, load_dataset, population_copy, train
    started = time.perf_counter()
    kwargs = dict(spec)
    options = NormOptions(**kwargs.pop("options", {}))
    with np.errstate(all="ignore"):
        result = train(quiet=True, options=options, **kwargs)
    out = {"test_accuracy": result["test_accuracy"], "curve": _clean_curve(result.get("curve", [])),
           "diverged": bool(result.get("diverged", False))}
    net = result["model"]
    (xtr, _), (xte, yte) = load_dataset(spec.get("data"))
    if spec["norm"] in ("bn", "brn") and spec["model"] != "lstm":
        out["batch_stats_accuracy"] = batch_stats_accuracy(net, xte, yte, spec["batch_size"],
                                                           spec["seed"])
    if spec.get("bn_stats") == "population":
        out["running_stats_accuracy"] = evaluate(net, xte, yte)
        net = population_copy(net, xtr, spec["batch_size"])
    if spec["model"] == "lstm" and spec.get("pixels"):
        out["padded_accuracy"] = padded_sequence_accuracy(net, xte, yte, SEQUENCE_PAD)
    out["seconds"] = time.perf_counter() - started
    return out


def _clean_curve(curve):
    """Curve points with non-finite losses as None (JSON has no NaN)."""
    return [dict(p, train_loss=p["train_loss"] if math.isfinite(p["train_loss"]) else None)
            for p in curve]


def batch_stats_accuracy(net, images, labels, batch_size, seed):
    """Test accuracy of ``net`` normalizing with the statistics of each test batch (training-mode
    forward on a copy, so the running statistics and the renorm step stay untouched).

    The test set is shuffled once with ``seed`` and cut into batches of the training batch size
    (a last batch of one joins the one before it, since BN needs two values per channel).
    """
    from ..autograd import no_grad
    from ..tensor import Tensor
    probe = copy.deepcopy(net)
    probe.train()
    order = np.random.default_rng(seed).permutation(len(labels))
    starts = list(range(0, len(order), batch_size))
    if len(starts) > 1 and len(order) - starts[-1] == 1:
        starts.pop()
    bounds = starts[1:] + [len(order)]
    correct = 0
    with no_grad():
        for lo, hi in zip(starts, bounds):
            idx = order[lo:hi]
            logits = probe(Tensor(images[idx])).data
            correct += int((logits.argmax(axis=1) == labels[idx]).sum())
    return correct / len(labels)


def padded_sequence_accuracy(net, images, labels, pad):
    """Test accuracy of a pixel-sequence classifier on sequences ``pad`` steps longer than in
    training: ``pad`` blank (zero) pixels, then the image's own pixels in the trained order."""
    from ..autograd import no_grad
    from ..sequence_models import image_to_sequence
    from ..tensor import Tensor
    net.eval()
    correct = 0
    with no_grad():
        for lo in range(0, len(labels), 500):
            x = images[lo:lo + 500]
            seq = image_to_sequence(Tensor(x), net.pixels, net.permuted).data
            blank = np.zeros((seq.shape[0], pad, seq.shape[2]), dtype=seq.dtype)
            logits = net(Tensor(np.concatenate([blank, seq], axis=1))).data
            correct += int((logits.argmax(axis=1) == labels[lo:lo + 500]).sum())
    return correct / len(labels)


@contextlib.contextmanager
def _one_thread_children():
    """Spawned processes start with NUMBA_NUM_THREADS=1 (and pass it on to the ranks they
    spawn); Numba reads it once, at import, so it must be in the environment before that."""
    old = os.environ.get("NUMBA_NUM_THREADS")
    os.environ["NUMBA_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("NUMBA_NUM_THREADS", None)
        else:
            os.environ["NUMBA_NUM_THREADS"] = old


class StudyError(RuntimeError):
    """A run of the study failed; the message names its settings."""


def run_all(specs, jobs, progress=None):
    """Run every distinct spec on ``jobs`` worker processes; return {key: result}.

    ``progress(done_cost, total_cost, done, total)`` is called after each run.
    The most expensive runs start first, so the pool ends evenly.
    """
    unique = {}
    for spec in specs:
        unique.setdefault(run_key(spec), spec)
    order = sorted(unique, key=lambda k: -run_cost(unique[k]))
    costs = {k: run_cost(unique[k]) for k in order}
    total, done_cost, results = sum(costs.values()), 0.0, {}
    if progress:
        progress(0.0, total, 0, len(order))
    ctx = mp.get_context("spawn")
    with _one_thread_children(), cf.ProcessPoolExecutor(max_workers=max(1, jobs),
                                                        mp_context=ctx) as pool:
        futures = {pool.submit(execute, unique[k]): k for k in order}
        try:
            for fut in cf.as_completed(futures):
                key = futures[fut]
                try:
                    results[key] = fut.result()
                except Exception as e:
                    raise StudyError(f"the run {describe(unique[key])} failed: "
                                     f"{type(e).__name__}: {e}") from e
                done_cost += costs[key]
                if progress:
                    progress(done_cost, total, len(results), len(order))
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return results


def describe(spec):
    keys = ("model", "norm", "batch_size", "lr", "optimizer", "workers", "sync_bn", "batches",
            "permuted", "seed")
    return ", ".join(f"{k}={spec[k]}" for k in keys if k in spec)


class ProgressBar:
    """One bar over every run of the study, with the elapsed time and an ETA from the runs'
    estimated costs; redrawn in place on a terminal, a line every 10% otherwise."""

    def __init__(self, stream=None, label="study"):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.label, self.start, self.last_decile = label, time.perf_counter(), -1

    def __call__(self, done_cost, total_cost, done, total):
        elapsed = time.perf_counter() - self.start
        frac = done_cost / total_cost if total_cost else 1.0
        eta = elapsed * (1 - frac) / frac if frac > 0 else None
        width = 30
        bar = "#" * int(width * frac) + "." * (width - int(width * frac))
        line = (f"{self.label} [{bar}] {done}/{total} runs  {_clock(elapsed)} elapsed  "
                f"ETA {_clock(eta) if eta is not None else '?'}")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done == total else ""))
            self.stream.flush()
        elif int(frac * 10) > self.last_decile or done == total:
            self.last_decile = int(frac * 10)
            self.stream.write(line + "\n")
            self.stream.flush()


def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"
