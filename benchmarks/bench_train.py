"""Training time, tinynorm vs the same model in PyTorch CPU, side by side in one process.

Each row trains one architecture in both frameworks, torch's copy starting from
the tinynorm model's initial weights, on the same batches. Rounds alternate
between the two so that drifting machine load hits both alike; the table shows
the median round in seconds and the ratio torch / tinynorm (above 1: tinynorm
is faster).

    digits rows (one round = one epoch of the bundled 8x8 digits, Adam lr 1e-3, batch
    --batch-size; a fresh pair is warmed up by one untimed epoch first; test accuracies):
      mlp      the MLP of `tinynorm train` (BN)
      cnn      the CNN of `tinynorm train --model cnn` (BN)
      lstm     `--model lstm --norm none` (LSTM 128 over the 8 rows) vs torch.nn.LSTM
      bnlstm   `--model lstm` (BN-LSTM 128) vs the same torch.nn.LSTM (the issue asks
               BN-LSTM >= torch's plain LSTM); torch's LSTM takes the BN-LSTM's weights
    random-data rows (one round = --steps steps on fixed random batches, 10 classes,
    after two untimed steps):
      cnn28    the CNN on 1x28x28 (MNIST's shape) at batch 64, Adam
      cnn32    the CNN on 1x32x32 at batch 256, Adam
      resnet18 ResNet-18, CIFAR variant (benchmarks/resnet.py), 3x32x32 at batch 128,
               SGD lr 0.1 momentum 0.9; --resnet-width scales it (64 as in the original)

    python benchmarks/bench_train.py [--epochs 20] [--batch-size 64] [--threads 2]
    python benchmarks/bench_train.py --rows cnn28,resnet18 --rounds 3 --steps 2
    python benchmarks/bench_train.py --quick      (every row, tiny: a smoke run)
    python benchmarks/bench_train.py --device cuda     (CNN step, batch 256, 32x32, vs torch CUDA)
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import print_table, run_on_device, settle  # noqa: E402
from resnet import resnet18  # noqa: E402

import tinynorm as tn  # noqa: E402
import tinynorm.functional as F  # noqa: E402
from tinynorm import optim  # noqa: E402
from tinynorm.data import DataLoader, load_digits  # noqa: E402
from tinynorm.models import build_model  # noqa: E402
from tinynorm.train import evaluate  # noqa: E402

DIGITS_ROWS = ("mlp", "cnn", "lstm", "bnlstm")
RANDOM_ROWS = {  # name: (image shape, batch, steps per round)
    "cnn28": ((1, 28, 28), 64, 10),
    "cnn32": ((1, 32, 32), 256, 5),
    "resnet18": ((3, 32, 32), 128, 1),
}
ROWS = DIGITS_ROWS + tuple(RANDOM_ROWS)


# ------------------------------------------------------------------ the two models of a row
def tinynorm_model(row, image_shape, resnet_width=64):
    if row == "resnet18":
        return resnet18(tn.nn, F, resnet_width)
    if row in ("lstm", "bnlstm"):
        return build_model("lstm", image_shape, 10, "none" if row == "lstm" else "bn")
    return build_model(row.rstrip("0123456789"), image_shape)


class TorchLSTMClassifier:
    """torch.nn.LSTM over the image's rows, then a linear layer on the last hidden state."""

    @staticmethod
    def build(torch, input_size, hidden_size=128, num_classes=10):
        nn = torch.nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.LSTM(input_size, hidden_size, batch_first=True)
                self.classifier = nn.Linear(hidden_size, num_classes)

            def forward(self, x):
                n, c, h, w = x.shape
                _, (h_n, _) = self.rnn(x.permute(0, 2, 1, 3).reshape(n, h, c * w))
                return self.classifier(h_n[-1])

        return Net()


def torch_model(torch, row, image_shape, resnet_width=64):
    nn = torch.nn
    c, h, w = image_shape
    if row == "resnet18":
        return resnet18(nn, torch.nn.functional, resnet_width)
    if row in ("lstm", "bnlstm"):
        return TorchLSTMClassifier.build(torch, c * w)
    if row == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 128, bias=False), nn.ReLU(),
                             nn.BatchNorm1d(128), nn.Linear(128, 10))
    return nn.Sequential(nn.Conv2d(c, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), 10))


# The BN-LSTM's gate weights under torch.nn.LSTM's names (its one bias goes to bias_ih).
_BNLSTM_NAMES = {"rnn.weight_ih": "weight_ih_l0", "rnn.weight_hh": "weight_hh_l0", "rnn.bias": "bias_ih_l0"}


def copy_weights(torch, net, tnet):
    """Copy ``net``'s (tinynorm) parameters into ``tnet`` (torch): each torch parameter takes
    the first unused tinynorm one of the same name ending and shape (the MLP lists its norm
    last); torch's parameters with no match are zeroed (the BN-LSTM twin's bias_hh)."""
    pool = [(_BNLSTM_NAMES.get(name, name.rsplit(".", 1)[-1]), p)
            for name, p in net.named_parameters()]
    with torch.no_grad():
        for name, tp in tnet.named_parameters():
            key = (name.rsplit(".", 1)[-1], tuple(tp.shape))
            i = next((i for i, (k, p) in enumerate(pool) if (k, tuple(p.shape)) == key), None)
            if i is None:
                tp.zero_()
            else:
                tp.copy_(torch.from_numpy(np.ascontiguousarray(pool.pop(i)[1].data)))


# ------------------------------------------------------------------ one framework's training loop
class Run:
    """One framework's model and optimizer; ``cross_entropy`` is that framework's."""

    def __init__(self, net, make_opt, cross_entropy):
        self.net, self.opt, self.cross_entropy = net, make_opt(net.parameters()), cross_entropy

    def step(self, xb, yb):
        loss = self.cross_entropy(self.net(xb), yb)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def steps(self, batches):
        self.net.train()
        for xb, yb in batches:
            self.step(xb, yb)


class TinynormRun(Run):
    def __init__(self, net, make_opt):
        super().__init__(net, make_opt, F.cross_entropy)

    def accuracy(self, test_set):
        return evaluate(self.net, *test_set)


class TorchRun(Run):
    def __init__(self, torch, net, make_opt):
        super().__init__(net, make_opt, torch.nn.functional.cross_entropy)
        self.torch = torch

    def accuracy(self, test_set):
        self.net.eval()
        with self.torch.no_grad():
            pred = self.net(self.torch.from_numpy(test_set[0])).argmax(1).numpy()
        return float((pred == test_set[1]).mean())


def make_pair(torch, row, image_shape, args, seed=0):
    """The tinynorm run and (with torch) its twin, from the same initial weights."""
    tn.manual_seed(seed)
    net = tinynorm_model(row, image_shape, args.resnet_width)
    if row == "resnet18":
        tn_opt = lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9)  # noqa: E731
        torch_opt = lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)  # noqa: E731
    else:
        tn_opt = lambda ps: optim.Adam(ps, lr=1e-3)  # noqa: E731
        torch_opt = lambda ps: torch.optim.Adam(ps, lr=1e-3)  # noqa: E731
    runs = [TinynormRun(net, tn_opt)]
    if torch is not None:
        torch.manual_seed(seed)
        tnet = torch_model(torch, row, image_shape, args.resnet_width)
        copy_weights(torch, net, tnet)
        runs.append(TorchRun(torch, tnet, torch_opt))
    return runs


def timed_rounds(runs, feeds, rounds):
    """Seconds of each round of each run; ``feeds[i]()`` gives run i's batches for one round.
    The runs take turns, round by round, so drifting machine load hits both alike."""
    times = [[] for _ in runs]
    for _ in range(rounds):
        for run, feed, t in zip(runs, feeds, times):
            batches = feed()
            settle(0.5)
            t0 = time.perf_counter()
            run.steps(batches)
            t.append(time.perf_counter() - t0)
    return times


# ------------------------------------------------------------------ rows
def digits_row(torch, row, args, train_set, test_set):
    shape = train_set[0].shape[1:]

    def feeds(seed):
        loaders = [DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True,
                              seed=seed) for _ in range(2)]
        to_torch = lambda loader: ((torch.from_numpy(xb.numpy()), torch.from_numpy(yb.numpy()))  # noqa: E731
                                   for xb, yb in loader)
        return [lambda: loaders[0], lambda: to_torch(loaders[1])]

    timed_rounds(make_pair(torch, row, shape, args, seed=1), feeds(1), 1)
    runs = make_pair(torch, row, shape, args)
    times = timed_rounds(runs, feeds(0), args.epochs)
    accs = [r.accuracy(test_set) for r in runs]
    return "epoch", times, accs


def random_row(torch, row, args):
    shape, batch, steps = RANDOM_ROWS[row]
    batch = args.random_batch or batch
    steps = args.steps or steps
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((batch,) + shape, dtype=np.float32), rng.integers(0, 10, batch))
            for _ in range(steps)]
    feeds = [lambda: [(tn.Tensor(x), y) for x, y in data]]
    if torch is not None:
        feeds.append(lambda: [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data])
    runs = make_pair(torch, row, shape, args)
    for run, feed in zip(runs, feeds):
        run.steps(feed()[:2])
    times = timed_rounds(runs, feeds, args.rounds)
    return f"{steps} x b{batch}", times, None


def run_row(torch, row, args, digits):
    if row in RANDOM_ROWS:
        return random_row(torch, row, args)
    return digits_row(torch, row, args, *digits)


def table_row(row, unit, times, accs):
    med = [statistics.median(t) for t in times]
    torch_s, speedup = (f"{med[1]:.3f}", f"{med[1] / med[0]:.2f}x") if len(med) > 1 else ("-", "-")
    acc = [f"{a:.4f}" for a in accs] + ["-"] * (2 - len(accs)) if accs else ["-", "-"]
    return (row, unit, len(times[0]), f"{med[0]:.3f}", torch_s, speedup, *acc)


# ------------------------------------------------------------------ command line
def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    p.add_argument("--epochs", type=int, default=20, help="rounds of the digits rows (epochs)")
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds of every row (default: --epochs for the digits rows, 5 for the others)")
    p.add_argument("--steps", type=int, default=None, help="steps per round of the random-data rows")
    p.add_argument("--batch-size", type=int, default=64, help="batch of the digits rows")
    p.add_argument("--random-batch", type=int, default=None, help="batch of every random-data row")
    p.add_argument("--resnet-width", type=int, default=64, help="ResNet-18's first width (64..512)")
    p.add_argument("--digits-subset", type=int, default=None, help="train on the first N digits")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 round, 2 steps, batch 8, ResNet widths 8..64, 128 digits")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", default=None, help=argparse.SUPPRESS)  # the old name of --rows
    return p


def settings(args):
    args.epochs = args.rounds or args.epochs
    args.rounds = args.rounds or 5
    if args.models:
        args.rows = args.models
    if args.quick:
        args.epochs = args.rounds = 1
        args.steps, args.random_batch, args.resnet_width = 2, 8, 8
        args.batch_size, args.digits_subset = 16, args.digits_subset or 128
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise SystemExit(f"bench_train: unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    return rows


def main(argv=None):
    return run_on_device(parse(), argv, "cuda: the CNN's training step at batch 256 on 32x32 inputs "
                                        "against torch CUDA", _cpu, norms=False)


def _cpu(args, torch):
    rows = settings(args)
    train_set, test_set = load_digits("train"), load_digits("test")
    if args.digits_subset:
        train_set = tuple(a[:args.digits_subset] for a in train_set)
    print(f"digits: {len(train_set[1])} train / {len(test_set[1])} test; digits rows: {args.epochs} "
          f"epochs at batch {args.batch_size}; random-data rows: {args.rounds} rounds; "
          f"ResNet width {args.resnet_width}; threads {args.threads}, "
          f"torch {torch.__version__ if torch else '-'}", flush=True)
    table = []
    for row in rows:
        table.append(table_row(row, *run_row(torch, row, args, (train_set, test_set))))
        print("  ".join(map(str, table[-1])), flush=True)
    print_table(("row", "round", "rounds", "tinynorm s", "torch s", "speedup", "tinynorm acc",
                 "torch acc"), table)
    return table


if __name__ == "__main__":
    main()
