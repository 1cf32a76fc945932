"""Shared timing helpers: medians of repeated runs and a triad bandwidth probe."""
import os
import statistics
import time

import numpy as np

# torch (optional) is imported first, so it starts exactly as a user's script would start it.
_torch = None
try:
    if not os.environ.get("TINYNORM_BENCH_NO_TORCH"):
        import torch as _torch
except ImportError:
    _torch = None


def set_threads(n):
    """Pin NumPy/Numba (and torch, if present) to ``n`` threads for a fair side-by-side run."""
    import numba
    numba.set_num_threads(n)
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass
    return n


def times_ms(fn, repeat=15, warmup=3, setup=None):
    """Wall times of ``repeat`` calls of ``fn()`` in milliseconds; ``setup()`` runs untimed
    before each call (and its result is passed to ``fn``)."""
    for _ in range(warmup):
        arg = setup() if setup else None
        fn(arg) if setup else fn()
    times = []
    for _ in range(repeat):
        arg = setup() if setup else None
        t0 = time.perf_counter()
        fn(arg) if setup else fn()
        times.append(1e3 * (time.perf_counter() - t0))
    return times


def median_ms(fn, repeat=15, warmup=3, setup=None):
    """Median wall time of ``fn()`` in milliseconds; ``setup()`` runs untimed before each call."""
    return statistics.median(times_ms(fn, repeat, warmup, setup))


def triad_bandwidth_gbs(n=1 << 25, repeat=10):
    """Measured memory bandwidth: ``a = b + s*c`` over float32 arrays (3 x 4 bytes per element)."""
    import numba

    @numba.njit(parallel=True, cache=True)
    def triad(a, b, c, s):
        for i in numba.prange(a.size):
            a[i] = b[i] + s * c[i]

    a = np.empty(n, np.float32)
    b = np.ones(n, np.float32)
    c = np.ones(n, np.float32)
    triad(a, b, c, np.float32(2.0))
    ms = median_ms(lambda: triad(a, b, c, np.float32(2.0)), repeat=repeat, warmup=2)
    return 3 * 4 * n / (ms * 1e-3) / 1e9


def settle(seconds=0.2):
    """Pause between the two frameworks' timings.

    torch's OpenMP workers busy-wait briefly after each parallel region; on 2
    cores they would steal the cores from whatever is timed right after them.
    They sleep within milliseconds (under 10 ms of CPU in the following second,
    measured). Longer pauses hurt instead: on this shared VM the first calls
    after a 1 s idle run about 15% slower.
    """
    time.sleep(seconds)


def torch_or_none():
    return None if os.environ.get("TINYNORM_BENCH_NO_TORCH") else _torch


def run_on_device(p, argv, gpu_help, cpu_main, **gpu_cases):
    """Parse ``argv`` with ``p`` plus ``--device``: 'cuda' hands the run to bench_gpu.main(argv,
    **gpu_cases); 'cpu' pins ``--threads`` and runs ``cpu_main(args, torch or None)``."""
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help=gpu_help)
    args, _ = p.parse_known_args(argv)
    if args.device == "cuda":
        import bench_gpu
        return bench_gpu.main(argv, **gpu_cases)
    set_threads(args.threads)
    return cpu_main(args, torch_or_none())


def print_table(header, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(header, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths)))
