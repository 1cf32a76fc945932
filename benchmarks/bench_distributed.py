"""Synchronized BN across 2 workers on this machine: exchange latency and training throughput.

Prints, for the multiprocessing (shared memory) and MPI backends:

* the latency of one BN exchange as SyncBatchNorm makes it: forward (gather
  per-channel count/mean/M2 and merge them) and backward (all-reduce sum dy and
  sum dy*(x - mean)), at C = 64 and 512; the median over many exchanges, each
  measured on rank 0 from entering the exchange to holding the result;
* the CNN's training throughput (samples/s, steady-state epochs) of
  ``tinynorm train --workers 2`` against one process.

Run: python benchmarks/bench_distributed.py [--epochs 4]
(the MPI rows need the mpi extra: pip install -e '.[mpi]').
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TINYNORM_BENCH_NO_TORCH", "1")
from common import print_table  # noqa: E402

CHANNELS = (64, 512)
REPEAT = 3000


def exchange_latency_us(channels=CHANNELS, repeat=REPEAT):
    """On every rank: median microseconds of SyncCombine.stats and .grad_sums per channel count."""
    import tinynorm.distributed as dist
    from tinynorm.ops.sync_batch_norm import SyncCombine
    comm = dist.get_communicator()
    combine = SyncCombine(comm, "bench")
    out = {}
    for c in channels:
        stats = [np.full(c, 10.0), np.random.default_rng(comm.rank).standard_normal(c), np.ones(c)]
        sums = [np.ones(c), np.ones(c)]
        for name, call in (("forward", lambda: combine.stats(*stats)),
                           ("backward", lambda: combine.grad_sums(*sums))):
            for _ in range(200):
                call()
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                call()
                times.append(time.perf_counter() - t0)
            out[f"{name} C={c}"] = 1e6 * statistics.median(times)
    return out


def mpi_latency():
    from tinynorm.distributed.launch import mpiexec_path
    proc = subprocess.run([mpiexec_path(), "-n", "2", sys.executable, "-m", "mpi4py", __file__,
                           "--mpi-rank"], capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise RuntimeError(proc.stdout + proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mpi_rank_main():
    import tinynorm.distributed as dist
    comm = dist.init_process_group("mpi")
    res = exchange_latency_us()
    if comm.rank == 0:
        print(json.dumps(res))


def train_throughput(epochs):
    """Samples/s of steady-state CNN epochs (the first epoch, which compiles and warms up, is dropped)."""
    from tinynorm.train import train
    rows = {}
    for workers in (1, 2, 1, 2):
        res = train(model="cnn", epochs=epochs, quiet=True, workers=workers)
        seconds = statistics.median(res["epoch_seconds"][1:])
        samples = 1437 // 64 * 64
        rows.setdefault(workers, []).append((samples / seconds, res["test_accuracy"]))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--mpi-rank", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mpi_rank:
        return _mpi_rank_main()
    import tinynorm.distributed as dist
    results = {"multiprocessing": dist.launch(exchange_latency_us, 2)[0]}
    try:
        import mpi4py  # noqa: F401
        results["mpi"] = mpi_latency()
    except ImportError:
        print("mpi4py not installed: MPI rows skipped (pip install -e '.[mpi]')")
    print("One SyncBatchNorm exchange, 2 workers, median us (target < 150 us with shared memory)")
    keys = list(results["multiprocessing"])
    print_table(["exchange"] + list(results), [[k] + [f"{results[b][k]:.1f}" for b in results]
                                               for k in keys])
    print()
    rows = train_throughput(args.epochs)
    one = statistics.median(r[0] for r in rows[1])
    two = statistics.median(r[0] for r in rows[2])
    print(f"CNN training on digits, batch 64, {args.epochs} epochs (first dropped), 2 runs each, "
          f"interleaved")
    print_table(["workers", "samples/s", "vs 1 worker", "test acc"],
                [[1, f"{one:.0f}", "1.00x", f"{rows[1][-1][1]:.4f}"],
                 [2, f"{two:.0f}", f"{two / one:.2f}x", f"{rows[2][-1][1]:.4f}"]])


if __name__ == "__main__":
    main()
