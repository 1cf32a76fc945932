"""What the profiler costs when it is off: small ops with the profiler's checks against the same code without them.

The tape dispatch (``Function.apply``), the backward walk and ``kernels_for`` each test one
module global (``_profiler is None``). This builds a baseline copy of ``Function.apply`` and
``autograd.backward`` from their source with those tests removed, then times a loop of tiny ops
(forward and backward on an 8-element tensor, where per-op overhead dominates) with the shipped
code and with the baseline, alternating, and prints medians. It also times the check alone.

    PYTHONPATH=$PWD python benchmarks/bench_profiler_overhead.py [--repeat 21] [--steps 300]
"""
import argparse
import inspect
import statistics
import textwrap
import time
import timeit

import numpy as np

import tinynorm as tn
from tinynorm import autograd

APPLY_CHECK = """        if _profiler is None:
            out = fn.forward(*(t.data for t in tensors), **params)
        else:
            out = _profiler.forward(fn, [t.data for t in tensors], params)
"""
APPLY_PLAIN = """        out = fn.forward(*(t.data for t in tensors), **params)
"""
BACKWARD_CHECK = """        if _profiler is None:
            input_grads = node.fn.backward(g)
        else:
            input_grads = _profiler.backward(node, g)
"""
BACKWARD_PLAIN = """        input_grads = node.fn.backward(g)
"""


def _without(func, check, plain):
    """``func`` rebuilt from its source with ``check`` replaced by ``plain`` (SystemExit if absent)."""
    source = inspect.getsource(func)
    if check not in source:
        raise SystemExit(f"bench_profiler_overhead: the profiler check in {func.__name__} changed; "
                         "update APPLY_CHECK / BACKWARD_CHECK")
    source = textwrap.dedent(source.replace(check, plain)).replace("@classmethod\n", "")
    namespace = dict(vars(autograd))
    exec(source, namespace)
    return namespace[func.__name__]


def _step(x):
    y = x
    for _ in range(10):
        y = y * 1.5 + 0.5
    y.sum().backward()


def _loop(x, steps):
    t0 = time.perf_counter()
    for _ in range(steps):
        _step(x)
    return (time.perf_counter() - t0) / steps


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=21)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()
    shipped_apply = autograd.Function.__dict__["apply"]
    shipped_backward = autograd.backward
    base_apply = classmethod(_without(shipped_apply.__func__, APPLY_CHECK, APPLY_PLAIN))
    base_backward = _without(shipped_backward, BACKWARD_CHECK, BACKWARD_PLAIN)
    x = tn.tensor(np.ones(8, dtype=np.float32), requires_grad=True)
    ops = 10 * 2 + 1
    timings = {"shipped": [], "baseline": []}
    _loop(x, 50)
    try:
        for r in range(args.repeat):
            for label in (("shipped", "baseline") if r % 2 else ("baseline", "shipped")):
                if label == "baseline":
                    autograd.Function.apply = base_apply
                    autograd.backward = base_backward
                else:
                    autograd.Function.apply = shipped_apply
                    autograd.backward = shipped_backward
                timings[label].append(_loop(x, args.steps) / ops)
    finally:
        autograd.Function.apply = shipped_apply
        autograd.backward = shipped_backward
    shipped = statistics.median(timings["shipped"]) * 1e6
    base = statistics.median(timings["baseline"]) * 1e6
    spread = {k: statistics.quantiles(v, n=4) for k, v in timings.items()}
    ns = dict(_profiler=None)
    check_ns = min(timeit.repeat("_profiler is None", globals=ns, number=200000, repeat=5)) / 200000 * 1e9
    print(f"{'code':<28} {'median us/op':>12} {'quartiles':>18}")
    for label, value in (("shipped", shipped), ("baseline", base)):
        q = spread[label]
        print(f"{label + (' (profiler checks)' if label == 'shipped' else ' (checks removed)'):<28} "
              f"{value:>12.3f} {q[0] * 1e6:>8.3f}-{q[2] * 1e6:<8.3f}")
    print(f"difference of medians: {shipped - base:+.3f} us/op ({100 * (shipped - base) / base:+.1f}%)")
    print(f"one check alone ('_profiler is None' on a global): {check_ns:.1f} ns; two per op "
          f"(forward, backward) = {100 * 2 * check_ns / 1e3 / base:.2f}% of an op")


if __name__ == "__main__":
    main()
