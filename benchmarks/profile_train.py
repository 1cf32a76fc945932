"""Where one training step's time goes: tinynorm's profiler and cProfile, per model.

For each model (the digits CNN and MLP of `tinynorm train`, BN, Adam lr 1e-3; `--models`
may add `lstm` and `bnlstm`, the LSTM and BN-LSTM of `--model lstm` over digits' rows; with
--cnn28 also the CNN on random 1x28x28 inputs, MNIST's shape; with --resnet ResNet-18 of
benchmarks/resnet.py on random 3x32x32 inputs, SGD lr 0.1 momentum 0.9, at --resnet-batch
and --resnet-width: every layer keeps its spatial shape at any width or batch) it prints:

* the median wall time of a step with no profiler active;
* tinynorm.profiler's self times grouped into GEMM, im2col/col2im, pooling, BN,
  activations, Adam, other kernels, the Python of the Functions' forward/backward
  outside their kernels, and what lies outside every range (Function.apply, the
  tape, Module calls, Tensor wrapping), with the number of Function calls per step
  and the Python cost per call;
* cProfile's tottime grouped by where the code lives (the tape and Tensor, Modules,
  ops, kernel wrappers with the Numba calls they make, GEMM, optimizers, NumPy
  allocations, other NumPy calls), then its top entries.

    python benchmarks/profile_train.py [--steps 20] [--batch-size 64] [--threads 2] [--cnn28]
    python benchmarks/profile_train.py --models lstm,bnlstm
    python benchmarks/profile_train.py --models none --resnet [--resnet-batch 32] [--resnet-width 64]
    python benchmarks/profile_train.py --quick      (a smoke run: 2 steps at batch 8)
"""
import argparse
import cProfile
import os
import pstats
import re
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import print_table, set_threads  # noqa: E402

import tinynorm as tn  # noqa: E402
import tinynorm.functional as F  # noqa: E402
from tinynorm import optim, profiler  # noqa: E402
from tinynorm.data import load_digits  # noqa: E402
from tinynorm.models import build_model  # noqa: E402

# tinynorm.profiler range names -> group (first match of the name's prefix wins).
KERNEL_GROUPS = (
    ("kernel:blas.", "GEMM"),
    ("kernel:im2col.", "im2col/col2im"),
    ("kernel:conv_planes.", "conv one sample per GEMM (im2col+GEMM+col2im)"),
    ("kernel:pooling.", "pooling"),
    ("kernel:batch_norm.", "BN"),
    ("kernel:activation.", "activations"),
    ("kernel:adam.", "Adam"),
    ("Optimizer.step", "optimizer step"),
    ("kernel:", "other kernels"),
    ("enumerate(DataLoader)", "data loader"),
)

FUNCTION_PYTHON = "Functions' Python (outside kernels)"
OUTSIDE = "outside ranges: apply, tape, Modules, Tensors"

# cProfile entries -> group, by file (first match wins) or by NumPy function name.
ALLOCATORS = {"empty", "zeros", "ones", "full", "empty_like", "zeros_like", "ones_like",
              "full_like", "copy", "astype", "ascontiguousarray", "array", "asarray"}
FILE_GROUPS = (
    ("tinynorm/buffer_pool", "allocations (NumPy, buffer pool)"),
    ("tinynorm/kernels/", "kernel wrappers + Numba kernels"),
    ("tinynorm/blas", "GEMM (blas.py + OpenBLAS)"),
    ("tinynorm/ops/", "ops: forward/backward Python"),
    ("tinynorm/optim/", "optimizer Python"),
    ("tinynorm/nn/", "Module calls"),
    ("tinynorm/functional", "functional"),
    ("tinynorm/", "tape, Function.apply, Tensor"),
)


def profiler_group(name, category):
    for prefix, group in KERNEL_GROUPS:
        if name.startswith(prefix):
            return group
    return FUNCTION_PYTHON if category in ("forward", "backward") else name


def cprofile_group(filename, funcname):
    path = filename.replace(os.sep, "/")
    for part, group in FILE_GROUPS:
        if part in path:
            return group
    if filename == "~":  # a builtin
        m = re.match(r"<method '(\w+)' of|<built-in method (?:numpy\.)?([\w.]+)>", funcname)
        bare = (m.group(1) or m.group(2)).rsplit(".", 1)[-1] if m else funcname
        if "numpy" in funcname and bare in ALLOCATORS:
            return "allocations (NumPy, buffer pool)"
        if "numpy" in funcname or "ndarray" in funcname:
            return "other NumPy calls"
        return "other builtins"
    if "numpy" in path:
        return "other NumPy calls"
    return "other Python"


def make_step(name, batch, seed=0, resnet_width=64):
    """A training-step closure for the named model and its fixed batches."""
    tn.manual_seed(seed)
    if name == "resnet18":
        from resnet import resnet18
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((batch, 3, 32, 32), dtype=np.float32)
        y = rng.integers(0, 10, batch)
        net = resnet18(tn.nn, F, resnet_width)
        opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    elif name == "cnn28":
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((batch, 1, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, batch)
    else:
        x, y = load_digits("train")
        x, y = x[:batch], y[:batch]
    if name in ("lstm", "bnlstm"):
        net = build_model("lstm", x.shape[1:], 10, "none" if name == "lstm" else "bn")
        opt = optim.Adam(net.parameters(), lr=1e-3)
    elif name != "resnet18":
        net = build_model(name.rstrip("0123456789"), x.shape[1:])
        opt = optim.Adam(net.parameters(), lr=1e-3)
    net.train()

    def step():
        loss = F.cross_entropy(net(tn.Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def wall_ms(step, steps):
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def profiler_breakdown(step, steps, plain_ms):
    """Self times per group in ms/step; what lies outside every range is ``plain_ms`` (the
    step without the profiler) less the ranges, so the profiler's own cost is left out."""
    t0 = time.perf_counter_ns()
    with profiler.profile() as prof:
        for _ in range(steps):
            step()
    wall_ms = (time.perf_counter_ns() - t0) / steps / 1e6
    groups, calls = {}, 0
    for row in prof.key_averages():
        g = profiler_group(row.key, row.category)
        groups[g] = groups.get(g, 0) + row.self_time_ns / steps / 1e6
        if row.category in ("forward", "backward"):
            calls += row.count
    groups[OUTSIDE] = max(0.0, plain_ms - sum(groups.values()))
    return wall_ms, groups, calls / steps


def cprofile_breakdown(step, steps, top):
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(steps):
        step()
    pr.disable()
    stats = pstats.Stats(pr)
    groups, entries = {}, []
    for (filename, line, funcname), (cc, nc, tt, ct, _) in stats.stats.items():
        g = cprofile_group(filename, funcname)
        groups[g] = groups.get(g, 0.0) + tt
        entries.append((tt, nc, ct, f"{os.path.relpath(filename) if filename != '~' else ''}"
                                    f"{':' + str(line) if line else ''}({funcname})"))
    entries.sort(reverse=True)
    return ({g: 1e3 * s / steps for g, s in groups.items()},
            [(f"{1e3 * tt / steps:.3f}", f"{nc / steps:.0f}", f"{1e3 * ct / steps:.3f}", where[-70:])
             for tt, nc, ct, where in entries[:top]], stats.total_calls / steps)


def print_groups(title, groups, total):
    rows = [(g, f"{ms:.3f}", f"{100 * ms / total:.1f}%")
            for g, ms in sorted(groups.items(), key=lambda kv: -kv[1])]
    print(title)
    print_table(("group", "ms/step", "% of step"), rows)


def profile_model(name, args):
    batch = args.resnet_batch if name == "resnet18" else args.batch_size
    step = make_step(name, batch, resnet_width=args.resnet_width)
    for _ in range(args.warmup):
        step()
    ms = wall_ms(step, args.steps)
    print(f"\n=== {name}, batch {batch}: {ms:.3f} ms/step (median of {args.steps}, "
          f"no profiler)")
    prof_ms, groups, calls = profiler_breakdown(step, args.steps, ms)
    python_ms = groups.get(FUNCTION_PYTHON, 0) + groups[OUTSIDE]
    print_groups(f"tinynorm.profiler ({prof_ms:.3f} ms/step with it on; % of the plain step): "
                 f"{calls:.0f} Function forward/backward calls per step, "
                 f"{1e3 * python_ms / calls:.1f} us of Python per call", groups, ms)
    cgroups, top, ncalls = cprofile_breakdown(step, args.steps, args.top)
    total = sum(cgroups.values())
    print_groups(f"cProfile (tottime): {total:.3f} ms/step under cProfile, "
                 f"{ncalls:.0f} Python calls per step", cgroups, total)
    print(f"cProfile top {args.top} by tottime (per step)")
    print_table(("tottime ms", "calls", "cumtime ms", "function"), top)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--models", default="cnn,mlp", help="comma-separated: cnn, mlp, lstm, bnlstm")
    p.add_argument("--cnn28", action="store_true", help="also the CNN on random 1x28x28 inputs")
    p.add_argument("--resnet", action="store_true",
                   help="also ResNet-18 (CIFAR variant) on random 3x32x32 inputs, SGD")
    p.add_argument("--resnet-batch", type=int, default=32)
    p.add_argument("--resnet-width", type=int, default=64)
    p.add_argument("--quick", action="store_true", help="smoke run: 1 warm-up, 2 steps, batch 8")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.batch_size, args.top = 2, 1, 8, 5
    set_threads(args.threads)
    print(f"threads {args.threads}, {args.warmup} warm-up steps, then each measurement over "
          f"{args.steps} steps", flush=True)
    models = [m for m in args.models.split(",") if m != "none"]
    for name in models + (["cnn28"] if args.cnn28 else []) + (["resnet18"] if args.resnet else []):
        profile_model(name, args)


if __name__ == "__main__":
    main()
