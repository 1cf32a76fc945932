"""How long one training checkpoint of ``tinynorm train`` takes to write (atomic: temp file, fsync, rename).

Builds the default CNN (bn) and an Adam state after one step, then times ``checkpoint.save`` to a
file in ``--dir`` (default: a temporary folder) ``--repeat`` times, as .npz and as .safetensors.
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import tinynorm as tn
from tinynorm import checkpoint
from tinynorm import functional as F
from tinynorm.data import DataLoader, load_digits
from tinynorm.models import NormOptions, build_model
from tinynorm.optim import Adam
from tinynorm.train import run_settings


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="cnn")
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--dir", default=None)
    args = p.parse_args()
    x, y = load_digits("train")
    net = build_model(args.model, x.shape[1:], 10, "bn")
    opt = Adam(net.parameters())
    loader = DataLoader((x, y), batch_size=64, shuffle=True, seed=0)
    xb, yb = next(iter(loader))
    F.cross_entropy(net(tn.tensor(xb)), yb).backward()
    opt.step()
    settings = run_settings(1, model=args.model, norm="bn", batch_size=64, lr=1e-3, optimizer="adam",
                            seed=0, data=None, options=NormOptions(), pixels=False, device="cpu")
    nbytes = sum(v.nbytes for v in net.state_dict().values())
    print(f"{args.model}: {sum(p.data.size for p in net.parameters())} parameters, model state "
          f"{nbytes / 1e6:.2f} MB (+ Adam's two moments)")
    folder = args.dir or tempfile.mkdtemp(prefix="tinynorm-bench-")
    for suffix in (".npz", ".safetensors"):
        path = os.path.join(folder, "ck" + suffix)
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            checkpoint.save(path, net, opt, loader, 1, settings, [(1.0, 0.5)])
            times.append(time.perf_counter() - t)
        print(f"{suffix:>12}: {os.path.getsize(path) / 1e6:.2f} MB, median {statistics.median(times) * 1e3:.1f} ms, "
              f"min {min(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms over {args.repeat} saves")


if __name__ == "__main__":
    main()
