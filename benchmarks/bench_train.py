"""Training time on digits, tinynorm vs the same model in PyTorch CPU, in one process.

Both run the same architecture, optimizer (Adam, lr 1e-3), batch size and
epochs over the same shuffled batches; kernels and torch are warmed up by one
untimed epoch first, and the timed epochs alternate between the two so that
drifting machine load hits both alike. Reports the summed epoch seconds, the
ratio, and both test accuracies.

    python benchmarks/bench_train.py [--epochs 20] [--batch-size 64] [--threads 2]
    python benchmarks/bench_train.py --device cuda     (CNN step, batch 256, 32x32, vs torch CUDA)
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import print_table, run_on_device, settle  # noqa: E402

import tinynorm as tn  # noqa: E402
import tinynorm.functional as F  # noqa: E402
from tinynorm import optim  # noqa: E402
from tinynorm.data import DataLoader, load_digits  # noqa: E402
from tinynorm.models import build_model  # noqa: E402
from tinynorm.train import evaluate  # noqa: E402


class TinynormRun:
    def __init__(self, model_name, image_shape, seed=0):
        tn.manual_seed(seed)
        self.net = build_model(model_name, image_shape)
        self.opt = optim.Adam(self.net.parameters(), lr=1e-3)

    def epoch(self, loader):
        self.net.train()
        for xb, yb in loader:
            loss = F.cross_entropy(self.net(xb), yb)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()

    def accuracy(self, test_set):
        return evaluate(self.net, *test_set)


def torch_model(torch, name, image_shape):
    nn = torch.nn
    c, h, w = image_shape
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 128, bias=False), nn.ReLU(),
                             nn.BatchNorm1d(128), nn.Linear(128, 10))
    return nn.Sequential(nn.Conv2d(c, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), 10))


class TorchRun:
    def __init__(self, torch, model_name, image_shape, seed=0):
        torch.manual_seed(seed)
        self.torch = torch
        self.net = torch_model(torch, model_name, image_shape)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)

    def epoch(self, loader):
        torch = self.torch
        self.net.train()
        for xb, yb in loader:
            loss = torch.nn.functional.cross_entropy(self.net(torch.from_numpy(xb.numpy())),
                                                     torch.from_numpy(yb.numpy()))
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()

    def accuracy(self, test_set):
        self.net.eval()
        with self.torch.no_grad():
            pred = self.net(self.torch.from_numpy(test_set[0])).argmax(1).numpy()
        return float((pred == test_set[1]).mean())


def timed_epochs(runs, train_set, epochs, batch_size, seed=0):
    """Interleave one epoch of each run at a time, so drifting machine load hits both alike."""
    loaders = [DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=True, seed=seed)
               for _ in runs]
    times = [[] for _ in runs]
    for _ in range(epochs):
        for run, loader, t in zip(runs, loaders, times):
            settle(0.5)
            t0 = time.perf_counter()
            run.epoch(loader)
            t.append(time.perf_counter() - t0)
    return times


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", default="mlp,cnn")
    return run_on_device(p, argv, "cuda: the CNN's training step at batch 256 on 32x32 inputs "
                                  "against torch CUDA", _cpu, norms=False)


def _cpu(args, torch):
    train_set, test_set = load_digits("train"), load_digits("test")
    print(f"digits: {len(train_set[1])} train / {len(test_set[1])} test, {args.epochs} epochs, "
          f"batch {args.batch_size}, threads {args.threads}, torch {torch.__version__ if torch else '-'}")
    rows = []
    for name in args.models.split(","):
        runs = [TinynormRun(name, train_set[0].shape[1:])]
        if torch is not None:
            runs.append(TorchRun(torch, name, train_set[0].shape[1:]))
        timed_epochs(runs, train_set, 1, args.batch_size, seed=1)
        runs = [TinynormRun(name, train_set[0].shape[1:])]
        if torch is not None:
            runs.append(TorchRun(torch, name, train_set[0].shape[1:]))
        times = timed_epochs(runs, train_set, args.epochs, args.batch_size)
        accs = [r.accuracy(test_set) for r in runs]
        totals = [sum(t) for t in times]
        if torch is not None:
            rows.append((name, f"{totals[0]:.2f}", f"{totals[1]:.2f}", f"{totals[1] / totals[0]:.2f}x",
                         f"{accs[0]:.4f}", f"{accs[1]:.4f}"))
        else:
            rows.append((name, f"{totals[0]:.2f}", "-", "-", f"{accs[0]:.4f}", "-"))
    print_table(("model", "tinynorm s", "torch s", "speedup", "tinynorm acc", "torch acc"), rows)


if __name__ == "__main__":
    main()
