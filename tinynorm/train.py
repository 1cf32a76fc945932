"""The training loop behind ``tinynorm train``."""
import sys
import time

from . import functional as F
from . import optim, random
from .autograd import no_grad
from .data import DataLoader, load_digits, load_mnist_dir
from .models import build_model
from .tensor import Tensor


def load_dataset(data_dir=None):
    """(train, test) pairs of (images, labels): digits by default, or IDX files in ``data_dir``."""
    if data_dir is None:
        return load_digits("train"), load_digits("test")
    return load_mnist_dir(data_dir, "train"), load_mnist_dir(data_dir, "test")


def make_optimizer(name, params, lr):
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9)
    if name == "adam":
        return optim.Adam(params, lr=lr)
    if name == "adamw":
        return optim.AdamW(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, adam or adamw")


def evaluate(model, images, labels, batch_size=500):
    """Accuracy of ``model`` (put in eval mode) on the given arrays."""
    model.eval()
    correct = 0
    with no_grad():
        for start in range(0, len(labels), batch_size):
            logits = model(Tensor(images[start:start + batch_size])).data
            correct += int((logits.argmax(axis=1) == labels[start:start + batch_size]).sum())
    return correct / len(labels)


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
          data=None, save=None, stream=None, quiet=False):
    """Train on digits (or IDX files in ``data``); returns a dict with the final accuracies."""
    stream = stream or sys.stdout
    random.manual_seed(seed)
    (xtr, ytr), (xte, yte) = load_dataset(data)
    net = build_model(model, xtr.shape[1:], int(max(ytr.max(), yte.max())) + 1, norm)
    opt = make_optimizer(optimizer, net.parameters(), lr)
    loader = DataLoader((xtr, ytr), batch_size=batch_size, shuffle=True, drop_last=True, seed=seed)
    if len(loader) == 0:
        raise ValueError(f"batch size {batch_size} is larger than the {len(ytr)} training samples")
    history = []
    for epoch in range(1, epochs + 1):
        net.train()
        bar = None if quiet else Progress(stream, len(loader), f"epoch {epoch:>3}/{epochs}")
        loss_sum = correct = seen = 0
        for step, (xb, yb) in enumerate(loader, 1):
            logits = net(Tensor(xb))
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(yb)
            correct += int((logits.data.argmax(axis=1) == yb).sum())
            seen += len(yb)
            if bar is not None:
                bar.update(step, loss_sum / seen, correct / seen)
        history.append((loss_sum / seen, correct / seen))
        if bar is not None:
            bar.close(loss_sum / seen, correct / seen)
    test_acc = evaluate(net, xte, yte)
    if not quiet:
        stream.write(f"test accuracy {test_acc:.4f} ({len(yte)} samples)\n")
    if save:
        from .serialization import save as save_npz
        save_npz(net.state_dict(), save)
        if not quiet:
            stream.write(f"saved state_dict to {save}\n")
    return {"model": net, "test_accuracy": test_acc, "history": history}


__all__ = ["train", "evaluate", "load_dataset"]
