"""Teaches: a plain training loop with tinynorm's nn, optim and DataLoader.

The seed article's DigitNN (Linear -> ReLU -> BatchNorm1d -> Linear) on the
bundled 8x8 digits: 20 epochs of Adam reach about 97-98% test accuracy.

    python examples/mlp_digits.py            # the full run
    python examples/mlp_digits.py --quick    # one epoch on 256 images (a smoke test)
"""
import argparse

import numpy as np

import tinynorm as tn
from tinynorm import nn, optim
from tinynorm.data import DataLoader, load_digits


class DigitNN(nn.Module):
    def __init__(self, hidden=128):
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.fc2(self.bn(self.relu(self.fc1(x))))


def accuracy(model, images, labels):
    model.eval()
    with tn.no_grad():
        logits = model(tn.tensor(images))
    model.train()
    return float((logits.numpy().argmax(axis=1) == labels).mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one epoch on 256 images")
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args(argv)
    tn.manual_seed(0)
    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    x_train, x_test = x_train.reshape(-1, 64), x_test.reshape(-1, 64)
    epochs = args.epochs
    if args.quick:
        x_train, y_train, epochs = x_train[:256], y_train[:256], 1

    model = DigitNN()
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader((x_train, y_train), batch_size=64, shuffle=True, drop_last=True, seed=0)
    for epoch in range(epochs):
        total = 0.0
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(tn.tensor(xb)), tn.tensor(yb))
            loss.backward()
            opt.step()
            total += loss.item()
        print(f"epoch {epoch + 1:>2}  loss {total / len(loader):.4f}  "
              f"test accuracy {accuracy(model, x_test, y_test):.4f}")
    acc = accuracy(model, x_test, y_test)
    print(f"final test accuracy {acc:.4f} ({int(round(acc * len(y_test)))}/{len(y_test)})")
    return acc


if __name__ == "__main__":
    main()
