"""Normalization ops, tinynorm vs PyTorch CPU, side by side in one process.

Times the Module forward (training mode, on the tape), the backward, and the
two together; medians of repeated runs. GB/s counts the passes over the
activation that the algorithm needs (forward: read x for the stats, read x
and write y; backward: read dy and x for the sums, read dy and x and write
dx), against a triad bandwidth measured in the same run.

    python benchmarks/bench_norms.py [--threads 2] [--repeat 15] [--dtype float32]
    python benchmarks/bench_norms.py --device cuda     (GPU shapes, against torch CUDA)
"""
import argparse
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import (median_ms, print_table, run_on_device, settle, times_ms,  # noqa: E402
                    triad_bandwidth_gbs)

import tinynorm as tn  # noqa: E402
from tinynorm import nn  # noqa: E402

def _bn(cls, c):
    return lambda m, dt: getattr(m, cls)(c, dtype=dt) if m is nn else getattr(m, cls)(c).to(dt)


def _tn_only(build):
    return lambda m, dt: build(dt) if m is nn else None


def _cbn(dt):
    conv = nn.Conv2d(64, 64, 3, padding=1, bias=False, dtype=dt)
    return nn.CrossIterationBatchNorm(conv, window=4, burn_in=0)


def _torch_conv_bn(torch, dt):
    return torch.nn.Sequential(torch.nn.Conv2d(64, 64, 3, padding=1, bias=False),
                               torch.nn.BatchNorm2d(64)).to(dt)


# (label, input shape, builder(module_namespace, dtype) -> module or None, fwd passes, bwd passes)
# Passes count the minimal traffic over the activation: BN's channel planes do not fit in cache,
# so its statistics cost a pass of their own (3 + 5); the per-sample norms normalize rows or
# groups that stay in cache (2 + 3). CBN's row includes its 3x3 conv; its torch column is
# torch's conv + BatchNorm2d, not the same op (torch has no CBN), so read it as a reference.
CASES = [
    ("BatchNorm2d", (64, 64, 56, 56), _bn("BatchNorm2d", 64), 3, 5),
    ("BatchNorm2d", (256, 256, 14, 14), _bn("BatchNorm2d", 256), 3, 5),
    ("BatchNorm1d", (4096, 1024), _bn("BatchNorm1d", 1024), 3, 5),
    ("LayerNorm", (4096, 1024),
     lambda m, dt: m.LayerNorm(1024, dtype=dt) if m is nn else m.LayerNorm(1024).to(dt), 2, 3),
    ("LayerNorm", (8192, 768),
     lambda m, dt: m.LayerNorm(768, dtype=dt) if m is nn else m.LayerNorm(768).to(dt), 2, 3),
    ("GroupNorm(32)", (32, 256, 28, 28),
     lambda m, dt: m.GroupNorm(32, 256, dtype=dt) if m is nn else m.GroupNorm(32, 256).to(dt), 2, 3),
    ("InstanceNorm2d", (32, 64, 56, 56), _bn("InstanceNorm2d", 64), 2, 3),
    ("LocalResponseNorm(5)", (32, 96, 55, 55), lambda m, dt: m.LocalResponseNorm(5), 2, 3),
    ("RMSNorm", (8192, 1024),
     lambda m, dt: m.RMSNorm(1024, dtype=dt) if m is nn else m.RMSNorm(1024).to(dt), 2, 3),
    ("FilterResponseNorm2d+TLU", (32, 64, 56, 56),
     _tn_only(lambda dt: nn.FilterResponseNorm2d(64, dtype=dt)), 2, 3),
    ("BatchRenorm2d", (32, 64, 56, 56), _tn_only(lambda dt: nn.BatchRenorm2d(64, dtype=dt)), 3, 5),
    ("CrossMiniBatchNorm", (32, 64, 56, 56),
     _tn_only(lambda dt: nn.CrossMiniBatchNorm(64, dtype=dt)), 3, 5),
    ("CrossIterationBN(conv3x3)", (32, 64, 28, 28), "cbn", 3, 5),
]


def bench_case(name, shape, build, fwd_passes, bwd_passes, dtype, repeat, rounds, torch,
               bandwidth):
    """Rows of fwd, bwd and fwd+bwd medians. tinynorm and torch take turns for ``rounds``
    rounds of ``repeat // rounds`` calls each, so that a slow spell of a shared machine
    falls on both columns rather than on one."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    ours = _cbn(dtype) if build == "cbn" else build(nn, dtype)

    def fwd():
        return ours(tn.from_numpy(x).requires_grad_())

    mod = None
    if torch is not None:
        tdt = getattr(torch, np.dtype(dtype).name)
        mod = _torch_conv_bn(torch, tdt) if build == "cbn" else build(torch.nn, tdt)
    xt, dyt = (torch.from_numpy(x), torch.from_numpy(dy)) if mod is not None else (None, None)

    def tfwd():
        return mod(xt.detach().requires_grad_())

    each = max(3, repeat // rounds)
    mine, theirs = ([[], [], []] for _ in range(2))
    for _ in range(rounds):
        settle()
        mine[0] += times_ms(fwd, each)
        mine[1] += times_ms(lambda y: y.backward(dy), each, setup=fwd)
        mine[2] += times_ms(lambda: fwd().backward(dy), each)
        if mod is not None:
            settle()
            theirs[0] += times_ms(tfwd, each)
            theirs[1] += times_ms(lambda y: y.backward(dyt), each, setup=tfwd)
            theirs[2] += times_ms(lambda: tfwd().backward(dyt), each)
    t_fwd, t_bwd, t_all = (statistics.median(t) for t in mine)
    ref = tuple(statistics.median(t) for t in theirs) if mod is not None else None
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


def bench_weight_norm(dtype, repeat, torch, bandwidth):
    """weight_norm's fused op on a (1024, 1024) weight (dim=0) vs torch._weight_norm."""
    from tinynorm.ops.weight_norm import _weight_norm
    rng = np.random.default_rng(0)
    v = rng.standard_normal((1024, 1024)).astype(dtype)
    g = rng.uniform(0.5, 1.5, (1024, 1)).astype(dtype)
    dw = rng.standard_normal(v.shape).astype(dtype)

    def ours():
        _weight_norm(tn.from_numpy(v).requires_grad_(), tn.from_numpy(g).requires_grad_(), 0).backward(dw)

    settle()
    ms = median_ms(ours, repeat)
    tref = ratio = "-"
    if torch is not None:
        settle()
        vt, gt, dwt = torch.from_numpy(v), torch.from_numpy(g), torch.from_numpy(dw)
        t = median_ms(lambda: torch._weight_norm(vt.detach().requires_grad_(),
                                                 gt.detach().requires_grad_(), 0).backward(dwt), repeat)
        tref, ratio = f"{t:.2f}", f"{t / ms:.2f}x"
    gbs = 5 * v.nbytes / (ms * 1e-3) / 1e9
    return [("weight_norm (dim 0)", "1024x1024", "fwd+bwd", f"{ms:.2f}", tref, ratio, f"{gbs:.1f}",
             f"{100 * gbs / bandwidth:.0f}%")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--rounds", type=int, default=3,
                   help="tinynorm and torch take turns this many times per case")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--only", default=None, help="run the cases whose label contains this text")
    return run_on_device(p, argv, "cuda: the GPU cases of bench_gpu.py against torch CUDA", _cpu,
                         train=False)


def _cpu(args, torch):
    bandwidth = triad_bandwidth_gbs()
    print(f"threads {args.threads}, dtype {args.dtype}, triad bandwidth {bandwidth:.1f} GB/s, "
          f"torch {torch.__version__ if torch else 'not installed'}")
    rows = []
    for name, shape, build, fp, bp in CASES:
        if args.only and args.only.lower() not in name.lower():
            continue
        rows += bench_case(name, shape, build, fp, bp, np.dtype(args.dtype), args.repeat,
                           args.rounds, torch, bandwidth)
    if not args.only or args.only.lower() in "weight_norm":
        rows += bench_weight_norm(np.dtype(args.dtype), args.repeat, torch, bandwidth)
    print_table(("op", "shape", "pass", "tinynorm ms", "torch ms", "speedup", "GB/s", "% triad"), rows)


if __name__ == "__main__":
    main()
