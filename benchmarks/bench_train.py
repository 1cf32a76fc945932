"""Training time on digits, tinynorm vs the same model in PyTorch CPU, in one process.

Both run the same architecture, optimizer (Adam, lr 1e-3), batch size and
epochs over the same shuffled batches; kernels and torch are warmed up by one
untimed epoch first. Reports seconds, the ratio, and both test accuracies.

    python benchmarks/bench_train.py [--epochs 20] [--batch-size 64] [--threads 2]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import print_table, set_threads, settle, torch_or_none  # noqa: E402

import tinynorm as tn  # noqa: E402
import tinynorm.functional as F  # noqa: E402
from tinynorm import optim  # noqa: E402
from tinynorm.data import DataLoader, load_digits  # noqa: E402
from tinynorm.models import build_model  # noqa: E402
from tinynorm.train import evaluate  # noqa: E402


def run_tinynorm(model_name, train_set, test_set, epochs, batch_size, seed=0):
    tn.manual_seed(seed)
    net = build_model(model_name, train_set[0].shape[1:])
    opt = optim.Adam(net.parameters(), lr=1e-3)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=True, seed=seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for xb, yb in loader:
            loss = F.cross_entropy(net(tn.from_numpy(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    elapsed = time.perf_counter() - t0
    return elapsed, evaluate(net, *test_set)


def torch_model(torch, name, image_shape):
    nn = torch.nn
    c, h, w = image_shape
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 128, bias=False), nn.ReLU(),
                             nn.BatchNorm1d(128), nn.Linear(128, 10))
    return nn.Sequential(nn.Conv2d(c, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), 10))


def run_torch(torch, model_name, train_set, test_set, epochs, batch_size, seed=0):
    torch.manual_seed(seed)
    net = torch_model(torch, model_name, train_set[0].shape[1:])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=True, seed=seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for xb, yb in loader:
            loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(xb)), torch.from_numpy(yb))
            opt.zero_grad()
            loss.backward()
            opt.step()
    elapsed = time.perf_counter() - t0
    net.eval()
    with torch.no_grad():
        pred = net(torch.from_numpy(test_set[0])).argmax(1).numpy()
    return elapsed, float((pred == test_set[1]).mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", default="mlp,cnn")
    args = p.parse_args(argv)
    set_threads(args.threads)
    torch = torch_or_none()
    train_set, test_set = load_digits("train"), load_digits("test")
    print(f"digits: {len(train_set[1])} train / {len(test_set[1])} test, {args.epochs} epochs, "
          f"batch {args.batch_size}, threads {args.threads}, torch {torch.__version__ if torch else '-'}")
    rows = []
    for name in args.models.split(","):
        settle()
        run_tinynorm(name, train_set, test_set, 1, args.batch_size)
        t_ours, acc_ours = run_tinynorm(name, train_set, test_set, args.epochs, args.batch_size)
        if torch is not None:
            settle()
            run_torch(torch, name, train_set, test_set, 1, args.batch_size)
            t_ref, acc_ref = run_torch(torch, name, train_set, test_set, args.epochs, args.batch_size)
            rows.append((name, f"{t_ours:.2f}", f"{t_ref:.2f}", f"{t_ref / t_ours:.2f}x",
                         f"{acc_ours:.4f}", f"{acc_ref:.4f}"))
        else:
            rows.append((name, f"{t_ours:.2f}", "-", "-", f"{acc_ours:.4f}", "-"))
    print_table(("model", "tinynorm s", "torch s", "speedup", "tinynorm acc", "torch acc"), rows)


if __name__ == "__main__":
    main()
