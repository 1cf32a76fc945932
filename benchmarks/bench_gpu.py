"""tinynorm on the GPU against torch CUDA, side by side in one process (needs CuPy and a GPU).

Run through ``python benchmarks/bench_norms.py --device cuda`` (norms, the
copy bandwidth, one kernel launch) and ``python benchmarks/bench_train.py
--device cuda`` (the CNN's training step), or directly:

    python benchmarks/bench_gpu.py [--repeat 20] [--only TEXT] [--skip-train]

Times are medians over repeats of CUDA events recorded around the call, so
they include the host work of issuing the kernels (what a training step
sees). GB/s counts the passes over the activation each direction must make (see
CASES) against a device-to-device copy measured in the same run (bytes read
+ bytes written).
"""
import argparse
import statistics
import time

import numpy as np

import tinynorm as tn
from tinynorm import nn


def _cupy():
    import cupy
    return cupy


def event_ms(fn, repeat, warmup=5, setup=None, events=None):
    """Median milliseconds between two events recorded around ``fn`` (``setup`` runs untimed)."""
    start_ev, end_ev, sync, elapsed = events
    times = []
    for i in range(warmup + repeat):
        arg = setup() if setup else None
        sync()
        start_ev.record()
        fn(arg) if setup else fn()
        end_ev.record()
        end_ev.synchronize()
        if i >= warmup:
            times.append(elapsed(start_ev, end_ev))
    return statistics.median(times)


def cupy_events():
    cp = _cupy()
    s, e = cp.cuda.Event(), cp.cuda.Event()
    return s, e, lambda: cp.cuda.get_current_stream().synchronize(), cp.cuda.get_elapsed_time


def torch_events(torch):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    return s, e, torch.cuda.synchronize, lambda a, b: a.elapsed_time(b)


def copy_bandwidth_gbs(nbytes=1 << 30, repeat=20):
    """Device-to-device copy through CuPy, counting bytes read plus bytes written."""
    cp = _cupy()
    a = cp.ones(nbytes // 4, cp.float32)
    b = cp.empty_like(a)
    ms = event_ms(lambda: b.__setitem__(Ellipsis, a), repeat, events=cupy_events())
    return 2 * nbytes / (ms * 1e-3) / 1e9


def launch_us(repeat=2000):
    """Host microseconds per launch of a 1-block kernel as tinynorm issues it (cuda ReLU, 256 values)."""
    cp = _cupy()
    from tinynorm.kernels.cuda import activation
    x = cp.ones(256, cp.float32)
    y = cp.empty_like(x)
    for _ in range(10):
        activation.relu_forward(x, y)
    cp.cuda.get_current_stream().synchronize()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeat):
            activation.relu_forward(x, y)
        cp.cuda.get_current_stream().synchronize()
        best = min(best, (time.perf_counter() - t0) / repeat * 1e6)
    return best


def _ln(m, shape):
    return m.LayerNorm(shape[-1])


# (label, shape, builder(module namespace, shape), forward passes, backward passes): the passes
# over the activation each direction must make, as in bench_norms.py. BN's channels (3 MB each,
# 822 MB in all) cannot stay on chip between the statistics and the normalization, so its
# statistics cost a pass of their own (3 + 5); the per-sample norms' rows stay in L2 (2 + 3).
CASES = [
    ("BatchNorm2d", (256, 256, 56, 56), lambda m, s: m.BatchNorm2d(s[1]), 3, 5),
    ("LayerNorm", (16384, 4096), _ln, 2, 3),
    ("GroupNorm(32)", (64, 256, 56, 56), lambda m, s: m.GroupNorm(32, s[1]), 2, 3),
    ("InstanceNorm2d", (64, 256, 56, 56), lambda m, s: m.InstanceNorm2d(s[1], affine=True), 2, 3),
    ("LocalResponseNorm(5)", (64, 96, 55, 55), lambda m, s: m.LocalResponseNorm(5), 2, 3),
    ("RMSNorm", (16384, 4096), lambda m, s: m.RMSNorm(s[-1]), 2, 3),
]


def bench_case(name, shape, build, fwd_passes, bwd_passes, repeat, torch, bandwidth):
    cp = _cupy()
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal(shape, dtype=np.float32)
    x = cp.asarray(x_host)
    dy = cp.asarray(rng.standard_normal(shape, dtype=np.float32))
    ours = build(nn, shape).to("cuda")
    ev = cupy_events()

    def fwd():
        return ours(tn.Tensor(x, requires_grad=True))

    t = (event_ms(fwd, repeat, events=ev),
         event_ms(lambda y: y.backward(dy), repeat, setup=fwd, events=ev),
         event_ms(lambda: fwd().backward(dy), repeat, events=ev))
    ref = None
    mod = build(torch.nn, shape) if torch is not None and hasattr(torch.nn, name.split("(")[0]) else None
    if mod is not None:
        mod = mod.cuda()
        xt = torch.as_tensor(x_host, device="cuda")
        dyt = torch.as_tensor(cp.asnumpy(dy), device="cuda")
        tev = torch_events(torch)

        def tfwd():
            return mod(xt.detach().requires_grad_())

        ref = (event_ms(tfwd, repeat, events=tev),
               event_ms(lambda y: y.backward(dyt), repeat, setup=tfwd, events=tev),
               event_ms(lambda: tfwd().backward(dyt), repeat, events=tev))
        del xt, dyt, mod
    nbytes = x.nbytes
    rows = []
    for k, (label, passes) in enumerate((("fwd", fwd_passes), ("bwd", bwd_passes),
                                         ("fwd+bwd", fwd_passes + bwd_passes))):
        gbs = passes * nbytes / (t[k] * 1e-3) / 1e9
        rows.append((name, "x".join(map(str, shape)), label, f"{t[k]:.3f}",
                     f"{ref[k]:.3f}" if ref else "-", f"{ref[k] / t[k]:.2f}x" if ref else "-",
                     f"{gbs:.0f}", f"{100 * gbs / bandwidth:.0f}%"))
    del x, dy
    cp.get_default_memory_pool().free_all_blocks()
    return rows


def cnn_step(torch, batch=256, size=32, repeat=30):
    """Milliseconds per training step of the CLI's CNN (Adam) at ``batch`` x 1 x size x size."""
    cp = _cupy()
    from tinynorm import functional as F
    from tinynorm import optim
    from tinynorm.models import build_model
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((batch, 1, size, size), dtype=np.float32)
    y_host = rng.integers(0, 10, batch)
    net = build_model("cnn", (1, size, size), 10, "bn").to("cuda")
    opt = optim.Adam(net.parameters(), lr=1e-3)
    x, y = cp.asarray(x_host), cp.asarray(y_host)

    def step():
        opt.zero_grad()
        F.cross_entropy(net(tn.Tensor(x)), y).backward()
        opt.step()

    ours = event_ms(step, repeat, warmup=5, events=cupy_events())
    ref = None
    if torch is not None:
        tnn = torch.nn
        tnet = tnn.Sequential(
            tnn.Conv2d(1, 32, 3, padding=1, bias=False), tnn.BatchNorm2d(32), tnn.ReLU(), tnn.MaxPool2d(2),
            tnn.Conv2d(32, 64, 3, padding=1, bias=False), tnn.BatchNorm2d(64), tnn.ReLU(), tnn.MaxPool2d(2),
            tnn.Flatten(), tnn.Linear(64 * (size // 4) ** 2, 10)).cuda()
        topt = torch.optim.Adam(tnet.parameters(), lr=1e-3)
        xt, yt = torch.as_tensor(x_host, device="cuda"), torch.as_tensor(y_host, device="cuda")

        def tstep():
            topt.zero_grad()
            torch.nn.functional.cross_entropy(tnet(xt), yt).backward()
            topt.step()

        ref = event_ms(tstep, repeat, warmup=5, events=torch_events(torch))
    return ours, ref


def main(argv=None, train=True, norms=True):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--only", default=None, help="run the norm cases whose label contains this text")
    p.add_argument("--skip-train", action="store_true")
    args, _ = p.parse_known_args(argv)
    if not tn.cuda.is_available():
        raise SystemExit("bench_gpu: needs CuPy and an NVIDIA GPU (and NUMBA_ENABLE_CUDASIM unset)")
    try:
        import torch
        if not torch.cuda.is_available():
            torch = None
    except ImportError:
        torch = None
    cp = _cupy()
    print(f"device {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()}, "
          f"torch {torch.__version__ if torch else 'not available'}, cupy {cp.__version__}")
    bandwidth = copy_bandwidth_gbs()
    print(f"device-to-device copy: {bandwidth:.0f} GB/s (read + write)")
    print(f"one kernel launch as tinynorm issues it: {launch_us():.1f} us")
    if torch is not None:
        t = torch.ones(256, device="cuda")
        for _ in range(10):
            torch.relu(t)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(2000):
            torch.relu(t)
        torch.cuda.synchronize()
        print(f"one kernel launch by torch (relu, 256 values): {(time.perf_counter() - t0) / 2000 * 1e6:.1f} us")
    if norms:
        rows = []
        for name, shape, build, fp, bp in CASES:
            if args.only and args.only.lower() not in name.lower():
                continue
            rows += bench_case(name, shape, build, fp, bp, args.repeat, torch, bandwidth)
            print(*rows[-1], flush=True)
        from common import print_table
        print_table(("op", "shape", "pass", "tinynorm ms", "torch ms", "speedup", "GB/s", "% copy"), rows)
    if train and not args.skip_train:
        ours, ref = cnn_step(torch)
        extra = f", torch {ref:.2f} ms ({ref / ours:.2f}x)" if ref else ""
        print(f"CNN training step, batch 256, 1x32x32, Adam: tinynorm {ours:.2f} ms{extra}")


if __name__ == "__main__":
    import os
    import sys
    sys.path.insert(0, os.path.dirname(__file__))
    main()
