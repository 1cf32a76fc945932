"""Teaches: training on the GPU: model.to("cuda"), batches moved with .to("cuda"), results back with .cpu().

The CNN of ``tinynorm train --model cnn`` (two conv -> BatchNorm2d -> ReLU ->
max-pool blocks) trains on the digits with its arrays on the GPU: CuPy for
generic math and cuBLAS, numba.cuda kernels for convolution, BN, pooling and
Adam. Without CuPy and an NVIDIA GPU it says so and exits with code 0.

    python examples/gpu_train.py            # 5 epochs
    python examples/gpu_train.py --quick    # 30 steps
"""
import argparse
import itertools
import sys

import tinynorm as tn
from tinynorm import nn, optim
from tinynorm.data import DataLoader, load_digits
from tinynorm.models import CNN


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="30 steps")
    args = p.parse_args(argv)
    if not tn.cuda.is_available():
        print("gpu_train.py: no GPU here (it needs CuPy and an NVIDIA GPU: pip install -e "
              "'.[cuda]' on a machine with a CUDA driver); nothing to do.")
        return None
    tn.manual_seed(0)
    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    model = CNN(1, (8, 8), norm="bn").to("cuda")
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader((x_train, y_train), batch_size=64, shuffle=True, drop_last=True, seed=0)
    steps = 30 if args.quick else 5 * len(loader)
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    for step, (xb, yb) in enumerate(itertools.islice(batches, steps), 1):
        opt.zero_grad()
        loss = loss_fn(model(tn.tensor(xb).to("cuda")), tn.tensor(yb).to("cuda"))
        loss.backward()
        opt.step()
        if step % len(loader) == 0 or step == steps:
            print(f"step {step:>4}  loss {loss.item():.4f}")
    model.eval()
    with tn.no_grad():
        logits = model(tn.tensor(x_test).to("cuda")).cpu().numpy()
    acc = float((logits.argmax(axis=1) == y_test).mean())
    print(f"test accuracy on cuda: {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()
    sys.exit(0)
