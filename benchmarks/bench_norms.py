"""Normalization ops, tinynorm vs PyTorch CPU, side by side in one process.

Times the Module forward (training mode, on the tape), the backward, and the
two together; medians of repeated runs. GB/s counts the passes over the
activation that the algorithm needs (forward: read x for the stats, read x
and write y; backward: read dy and x for the sums, read dy and x and write
dx), against a triad bandwidth measured in the same run.

    python benchmarks/bench_norms.py [--threads 2] [--repeat 15] [--dtype float32]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import median_ms, print_table, set_threads, settle, torch_or_none, triad_bandwidth_gbs  # noqa: E402

import tinynorm as tn  # noqa: E402
from tinynorm import nn  # noqa: E402

CASES = [
    ("BatchNorm2d", (64, 64, 56, 56), 3, 5),
    ("BatchNorm2d", (256, 256, 14, 14), 3, 5),
    ("BatchNorm1d", (4096, 1024), 3, 5),
]


def bench_case(name, shape, fwd_passes, bwd_passes, dtype, repeat, torch, bandwidth):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    ours = getattr(nn, name)(c, dtype=dtype)

    def fwd():
        return ours(tn.from_numpy(x).requires_grad_())

    settle()
    t_fwd = median_ms(fwd, repeat)
    t_bwd = median_ms(lambda y: y.backward(dy), repeat, setup=fwd)
    t_all = median_ms(lambda: fwd().backward(dy), repeat)
    ref = None
    if torch is not None:
        settle()
        mod = getattr(torch.nn, name)(c).to(getattr(torch, np.dtype(dtype).name))
        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)

        def tfwd():
            return mod(xt.detach().requires_grad_())

        ref = (median_ms(tfwd, repeat),
               median_ms(lambda y: y.backward(dyt), repeat, setup=tfwd),
               median_ms(lambda: tfwd().backward(dyt), repeat))
    nbytes = x.nbytes
    rows = []
    for label, ms, passes, k in (("fwd", t_fwd, fwd_passes, 0), ("bwd", t_bwd, bwd_passes, 1),
                                 ("fwd+bwd", t_all, fwd_passes + bwd_passes, 2)):
        gbs = passes * nbytes / (ms * 1e-3) / 1e9
        tref = f"{ref[k]:.2f}" if ref else "-"
        ratio = f"{ref[k] / ms:.2f}x" if ref else "-"
        rows.append((name, "x".join(map(str, shape)), label, f"{ms:.2f}", tref, ratio,
                     f"{gbs:.1f}", f"{100 * gbs / bandwidth:.0f}%"))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = p.parse_args(argv)
    set_threads(args.threads)
    torch = torch_or_none()
    bandwidth = triad_bandwidth_gbs()
    print(f"threads {args.threads}, dtype {args.dtype}, triad bandwidth {bandwidth:.1f} GB/s, "
          f"torch {torch.__version__ if torch else 'not installed'}")
    rows = []
    for name, shape, fp, bp in CASES:
        rows += bench_case(name, shape, fp, bp, np.dtype(args.dtype), args.repeat, torch, bandwidth)
    print_table(("op", "shape", "pass", "tinynorm ms", "torch ms", "speedup", "GB/s", "% triad"), rows)


if __name__ == "__main__":
    main()
