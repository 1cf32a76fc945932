"""The training loop behind ``tinynorm train``."""
import copy
import sys
import time

import numpy as np

from . import checkpoint, checks, distributed, nn, norm_registry, optim, random, serialization
from . import functional as F
from .autograd import no_grad
from .data import DataLoader, PairedBatchLoader, load_digits, load_mnist_dir
from .models import NormOptions, build_model
from .tensor import Tensor


def load_dataset(data_dir=None):
    """(train, test) pairs of (images, labels): digits by default, or IDX files in ``data_dir``."""
    if data_dir is None:
        return load_digits("train"), load_digits("test")
    train, test = load_mnist_dir(data_dir, "train"), load_mnist_dir(data_dir, "test")
    if train[0].shape[1:] != test[0].shape[1:]:
        (h, w), (th, tw) = train[0].shape[2:], test[0].shape[2:]
        raise ValueError(f"{data_dir}: the test images are {th}x{tw} pixels, the training images "
                         f"{h}x{w}; a model takes one size")
    return train, test


def make_optimizer(name, params, lr, momentum=None):
    """``name`` 'sgd' (momentum 0.9 unless given), 'adam' or 'adamw'."""
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9 if momentum is None else momentum)
    if name == "adam":
        return optim.Adam(params, lr=lr)
    if name == "adamw":
        return optim.AdamW(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, adam or adamw")


def _on(device, array):
    """``array`` (NumPy) as an array of ``device``: itself on the CPU, a CuPy copy on the GPU."""
    if device == "cpu":
        return array
    import cupy
    return cupy.asarray(array)


def evaluate(model, images, labels, batch_size=500, device="cpu"):
    """Accuracy of ``model`` (put in eval mode) on the given arrays."""
    model.eval()
    correct = 0
    with no_grad():
        for start in range(0, len(labels), batch_size):
            logits = model(Tensor(_on(device, images[start:start + batch_size]))).data
            correct += (logits.argmax(axis=1) == _on(device, labels[start:start + batch_size])).sum()
    return int(correct) / len(labels)


def population_copy(net, images, batch_size, device="cpu"):
    """A copy of ``net`` whose BN statistics are recomputed over ``images`` in batches of
    ``batch_size`` (the BN paper's population statistics; :func:`tinynorm.nn.utils.update_bn`)."""
    probe = copy.deepcopy(net)
    starts = range(0, len(images) - batch_size + 1, batch_size)
    nn.utils.update_bn((Tensor(_on(device, images[s:s + batch_size])) for s in starts), probe)
    return probe


def check_device(device, model, norm, workers, backend):
    """Raise ValueError unless this run can use ``device`` ('cpu' or 'cuda')."""
    if device == "cpu":
        return
    if device != "cuda":
        raise ValueError(f"unknown device {device!r}; choose cpu or cuda")
    if workers > 1 or backend == "mpi":
        raise ValueError("--device cuda trains on one GPU; --workers and --backend mpi are CPU-only")
    if model == "lstm":
        raise ValueError("--model lstm runs on the CPU only; use --device cpu")
    on_gpu = norm_registry.keys(device="cuda")
    if norm not in on_gpu:
        raise ValueError(f"--norm {norm} merges statistics on the host and runs on the CPU only; "
                         f"on the GPU choose one of {', '.join(on_gpu)}")
    from . import gpu
    try:
        gpu.require()
    except RuntimeError as e:
        raise ValueError(str(e)) from None


class Progress:
    """One line per epoch; redrawn in place on a terminal, printed once when piped."""

    def __init__(self, stream, total, label):
        self.stream, self.total, self.label = stream, total, label
        self.tty = stream.isatty()
        self.start = time.perf_counter()

    def update(self, done, loss, acc):
        if self.tty:
            width = 24
            filled = int(width * done / self.total)
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total} "
                              f"loss {loss:.4f} acc {acc:.4f}")
            self.stream.flush()

    def close(self, loss, acc, extra=""):
        elapsed = time.perf_counter() - self.start
        end = "\r" if self.tty else ""
        self.stream.write(f"{end}{self.label} [{'#' * 24}] {self.total}/{self.total} "
                          f"loss {loss:.4f} acc {acc:.4f} {extra}({elapsed:.1f}s)\n")
        self.stream.flush()


def train(model="mlp", norm="bn", epochs=20, batch_size=64, lr=1e-3, optimizer="adam", seed=0,
          data=None, save=None, stream=None, quiet=False, workers=1, backend="multiprocessing",
          timeout=60.0, options=None, subdivisions=None, pixels=False, device="cpu",
          permuted=False, sync_bn=True, batches="iid", curve_every=None, stop_on_nonfinite=False,
          momentum=None, bn_stats="running", resume=None):
    """Train on digits (or IDX files in ``data``); returns a dict with the final accuracies.

    ``workers > 1`` splits every global batch of ``batch_size`` samples across
    that many spawned processes (simulated devices) that run SyncBatchNorm and
    average gradients; ``backend='mpi'`` does the same across the ranks of an
    ``mpiexec`` launch. Only rank 0 prints, evaluates and saves.
    ``subdivisions`` (default 4 for CmBN, else 1) splits every batch into that
    many mini-batches whose gradients are accumulated before one optimizer
    step; ``options`` is a :class:`tinynorm.models.NormOptions`. ``device='cuda'``
    trains on the GPU (CuPy arrays, numba.cuda kernels). ``permuted`` reads
    the LSTM's pixels in a fixed random order.

    ``sync_bn=False`` keeps each worker's BatchNorm on its own shard (plain
    data parallelism). ``batches='non-iid'`` draws every batch as same-label
    pairs (:class:`tinynorm.data.PairedBatchLoader`). ``curve_every`` records a
    learning curve in ``result['curve']``: a point (step, epoch, mean training
    loss since the last point, test accuracy) every that many optimizer steps
    (0: at the end of each epoch only) and at every epoch's end;
    ``stop_on_nonfinite`` ends the run at a curve point whose loss is NaN or
    infinite and sets ``result['diverged']``. ``momentum`` overrides SGD's 0.9.
    ``bn_stats='population'`` measures every test accuracy (curve and final)
    with BN's statistics recomputed over the training set on a copy of the
    net (:func:`population_copy`); the returned model keeps its running averages.

    ``save`` writes a :mod:`tinynorm.checkpoint` after every epoch; ``resume``
    continues from one, bitwise as if the run had not stopped (a learning curve
    then holds the resumed epochs' points only).
    """
    if save:
        serialization.check_target(save)
    if resume:
        checkpoint.load(resume)
    if bn_stats not in ("running", "population"):
        raise ValueError(f"bn_stats must be 'running' or 'population', got {bn_stats!r}")
    if bn_stats == "population" and (workers > 1 or backend == "mpi"):
        raise ValueError("--bn-stats population runs in one process; drop --workers/--backend")
    if batches not in ("iid", "non-iid"):
        raise ValueError(f"batches must be 'iid' or 'non-iid', got {batches!r}")
    if curve_every is not None:
        checks.integer(curve_every, "curve_every (a step count, or None)", 0)
    check_device(device, model, norm, workers, backend)
    if subdivisions is None:
        row = norm_registry.NORMS.get(norm)
        subdivisions = row.subdivisions if row else 1
    if not isinstance(subdivisions, int) or subdivisions < 1 or subdivisions > batch_size:
        raise ValueError(f"subdivisions must be between 1 and the batch size {batch_size}, "
                         f"got {subdivisions}")
    options = copy.copy(options or NormOptions())
    options.subdivisions = subdivisions
    config = dict(model=model, norm=norm, epochs=epochs, batch_size=batch_size, lr=lr,
                  optimizer=optimizer, seed=seed, data=data, save=save, quiet=quiet,
                  options=options, pixels=pixels, device=device, permuted=permuted,
                  sync_bn=sync_bn, batches=batches, curve_every=curve_every,
                  stop_on_nonfinite=stop_on_nonfinite, momentum=momentum, bn_stats=bn_stats,
                  resume=resume)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if (workers > 1 or backend == "mpi") and norm in norm_registry.keys(per_process=True):
        per_sample = [k for k in norm_registry.keys(per_process=False) if k not in ("bn", "none")]
        raise ValueError(f"--norm {norm} keeps per-process statistics that tinynorm does not "
                         "synchronize; with several workers use --norm bn (SyncBatchNorm) or a "
                         f"per-sample norm ({', '.join(per_sample)})")
    if backend == "mpi":
        comm = distributed.init_process_group("mpi")
        if workers not in (1, comm.world_size):
            raise ValueError(f"--workers {workers} does not match the {comm.world_size} MPI ranks; "
                             "with --backend mpi the rank count comes from mpiexec -n")
        return _train_rank(stream=stream, **config)
    if backend != "multiprocessing":
        raise ValueError(f"unknown backend {backend!r}; choose multiprocessing or mpi")
    if workers == 1:
        return _train_rank(stream=stream, **config)
    results = distributed.launch(_train_rank, workers, kwargs=config, timeout=timeout)
    out = results[0]
    (xtr, ytr), (xte, yte) = load_dataset(data)
    out["model"] = build_model(model, xtr.shape[1:], int(max(ytr.max(), yte.max())) + 1, norm,
                               options, pixels, permuted)
    out["model"].load_state_dict(out.pop("state_dict"))
    return out


def run_settings(world, **settings):
    """What a checkpoint must share with the run that resumes it, as JSON values."""
    import json
    settings["options"] = vars(settings["options"])
    return json.loads(json.dumps(dict(settings, world=world)))


def _train_rank(model, norm, epochs, batch_size, lr, optimizer, seed, data, save, quiet,
                options, pixels, device="cpu", stream=None, permuted=False, sync_bn=True,
                batches="iid", curve_every=None, stop_on_nonfinite=False, momentum=None,
                bn_stats="running", resume=None):
    """The training loop of one rank (the only one when the world has one rank)."""
    comm = distributed.get_communicator()
    world, rank = comm.world_size, comm.rank
    quiet = quiet or rank != 0
    stream = stream or sys.stdout
    random.manual_seed(seed)
    (xtr, ytr), (xte, yte) = load_dataset(data)
    net = build_model(model, xtr.shape[1:], int(max(ytr.max(), yte.max())) + 1, norm, options,
                      pixels, permuted).to(device)
    subdivisions = options.subdivisions
    scaled = world > 1 or subdivisions > 1
    if world > 1:
        if sync_bn:
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        distributed.broadcast_module(net)
    opt = make_optimizer(optimizer, net.parameters(), lr, momentum)
    if batches == "non-iid":
        loader = PairedBatchLoader((xtr, ytr), batch_size=batch_size, seed=seed)
    else:
        loader = DataLoader((xtr, ytr), batch_size=batch_size, shuffle=True, drop_last=True,
                            seed=seed)
    if len(loader) == 0:
        raise ValueError(f"batch size {batch_size} is larger than the {len(ytr)} training samples")
    def test_accuracy():
        probe = net if bn_stats == "running" else population_copy(net, xtr, batch_size, device)
        acc = evaluate(probe, xte, yte, device=device)
        net.train()
        return acc

    curve = None if curve_every is None else _Curve(comm, test_accuracy)
    settings = run_settings(world, model=model, norm=norm, batch_size=batch_size, lr=lr,
                            optimizer=optimizer, seed=seed, data=data, options=options,
                            pixels=pixels, device=device, permuted=permuted, sync_bn=sync_bn,
                            batches=batches, momentum=momentum)
    history, epoch_seconds, steps, diverged, first = [], [], 0, False, 1
    if resume:
        saved = checkpoint.load(resume)
        saved.check_settings(settings)
        if saved.epoch > epochs:
            raise ValueError(f"--resume {resume}: the checkpoint has {saved.epoch} epochs already, "
                             f"more than --epochs {epochs} (the total to reach)")
        saved.restore(net, opt, loader)
        history, first = [tuple(h) for h in saved.meta["history"]], saved.epoch + 1
        steps = saved.epoch * len(loader)
    for epoch in range(first, epochs + 1):
        started = time.perf_counter()
        net.train()
        bar = None if quiet else Progress(stream, len(loader), f"epoch {epoch:>3}/{epochs}")
        loss_sum = correct = seen = 0
        for step, (xb, yb) in enumerate(loader, 1):
            xb, yb = np.asarray(xb), np.asarray(yb)
            if world > 1:
                xb, yb = np.array_split(xb, world)[rank], np.array_split(yb, world)[rank]
            opt.zero_grad()
            for xs, ys in zip(np.array_split(xb, subdivisions), np.array_split(yb, subdivisions)):
                xs, ys = _on(device, xs), _on(device, ys)
                logits = net(Tensor(xs))
                if scaled:
                    loss = F.cross_entropy(logits, ys, reduction="sum") * (1.0 / batch_size)
                else:
                    loss = F.cross_entropy(logits, ys)
                loss.backward()
                batch_loss = loss.data * (batch_size if scaled else len(ys))
                loss_sum += batch_loss
                correct += (logits.data.argmax(axis=1) == ys).sum()
                seen += len(ys)
                if curve is not None:
                    curve.add(batch_loss, len(ys))
            if world > 1:
                distributed.allreduce_gradients(net, op="sum")
            opt.step()
            steps += 1
            if bar is not None and bar.tty:
                bar.update(step, float(loss_sum) / max(seen, 1), int(correct) / max(seen, 1))
            if curve is not None and (step == len(loader) or (curve_every and steps % curve_every == 0)):
                point = curve.point(steps, epoch)
                if stop_on_nonfinite and not np.isfinite(point["train_loss"]):
                    diverged = True
                    break
        loss_sum, correct = float(loss_sum), int(correct)
        if world > 1:
            loss_sum, correct, seen = comm.allreduce(
                np.array([loss_sum, correct, seen], dtype=np.float64), tag="epoch totals")
        history.append((float(loss_sum / seen), float(correct / seen)))
        epoch_seconds.append(time.perf_counter() - started)
        if bar is not None:
            bar.close(*history[-1], extra=f"{world} workers " if world > 1 else "")
        if save and rank == 0:
            checkpoint.save(save, net, opt, loader, epoch, settings, history)
        if diverged:
            break
    result = {"test_accuracy": None, "history": history, "epoch_seconds": epoch_seconds}
    if curve is not None:
        result["curve"], result["diverged"] = curve.points, diverged
    if rank == 0:
        result["test_accuracy"] = test_acc = test_accuracy()
        net.eval()
        if not quiet:
            stream.write(f"test accuracy {test_acc:.4f} ({len(yte)} samples)\n")
        if save and not quiet:
            stream.write(f"saved a checkpoint after every epoch to {save}\n")
    if world > 1:
        result["state_dict"] = {k: np.array(v, copy=True) for k, v in net.state_dict().items()}
    else:
        result["model"] = net
    return result


class _Curve:
    """Learning-curve points: the training loss since the last point (summed over every rank)
    and the test accuracy (rank 0 evaluates; the others record None)."""

    def __init__(self, comm, test_accuracy):
        self.comm, self.test_accuracy = comm, test_accuracy
        self.loss_sum, self.count, self.points = 0.0, 0, []

    def add(self, batch_loss, n):
        self.loss_sum += float(batch_loss)
        self.count += n

    def point(self, step, epoch):
        total = np.array([self.loss_sum, self.count], dtype=np.float64)
        if self.comm.world_size > 1:
            total = self.comm.allreduce(total, tag="curve point")
        acc = self.test_accuracy() if self.comm.rank == 0 else None
        loss = float(total[0] / total[1]) if total[1] else float("nan")
        self.points.append({"step": step, "epoch": epoch, "train_loss": loss, "test_accuracy": acc})
        self.loss_sum, self.count = 0.0, 0
        return self.points[-1]


__all__ = ["train", "evaluate", "load_dataset"]
