"""Teaches: what batch size 2 does to BatchNorm, and why GroupNorm does not care.

The same small CNN is trained twice on the digits with two images per step:
once with BatchNorm2d, once with GroupNorm. BN normalizes each channel with
the statistics of the two images in the batch, so in training mode an image's
output depends on which image it is paired with; at test time BN switches to
running averages, which only approximate those noisy statistics. GN
normalizes each image by itself, so the batch never enters. The script prints
the test accuracy (eval mode) and how often a test image's predicted class
changes when only its batch partner changes (training mode). On these easy
digits both reach similar accuracy at batch 2; the partner effect is BN's alone.

    python examples/small_batch.py            # 2 epochs per norm
    python examples/small_batch.py --quick    # 150 steps per norm
"""
import argparse
import itertools

import numpy as np

import tinynorm as tn
from tinynorm import nn, optim
from tinynorm.data import DataLoader, load_digits
from tinynorm.train import evaluate


def cnn(norm):
    def layer(c):
        return nn.BatchNorm2d(c) if norm == "bn" else nn.GroupNorm(4, c)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), layer(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), layer(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10))


def partner_flips(model, images, pairs=200):
    """Fraction of images whose training-mode prediction differs between two batch partners."""
    flips = 0
    with tn.no_grad():
        for i in range(pairs):
            a, b, c = images[i:i + 1], images[i + 1:i + 2], images[i + 2:i + 3]
            p1 = model(tn.tensor(np.concatenate([a, b])))
            p2 = model(tn.tensor(np.concatenate([a, c])))
            flips += int(p1.numpy()[0].argmax() != p2.numpy()[0].argmax())
    return flips / pairs


def run(norm, steps, batch_size=2):
    tn.manual_seed(0)
    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    model = cnn(norm)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader((x_train, y_train), batch_size=batch_size, shuffle=True, drop_last=True,
                        seed=0)
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    for xb, yb in itertools.islice(batches, steps):
        opt.zero_grad()
        loss_fn(model(tn.tensor(xb)), tn.tensor(yb)).backward()
        opt.step()
    flips = partner_flips(model, x_test)
    return evaluate(model, x_test, y_test), flips


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="150 steps per norm")
    args = p.parse_args(argv)
    steps = 150 if args.quick else 2 * (1437 // 2)
    results = {}
    for norm, name in (("bn", "BatchNorm2d"), ("gn", "GroupNorm(4)")):
        results[norm] = acc, flips = run(norm, steps)
        print(f"{name:<13} batch 2, {steps} steps: test accuracy {acc:.4f}; prediction changes "
              f"with the batch partner for {flips:.1%} of test images (training mode)")
    return results


if __name__ == "__main__":
    main()
