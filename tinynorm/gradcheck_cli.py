"""``tinynorm gradcheck [OP ...]``: run :func:`tinynorm.testing.check_op` on the built-in ops and print a table.

Each op is checked against its float64 oracle in :mod:`tinynorm.testing.oracles`
(forward in every dtype and device, finite differences of every input, float32
against float64, CPU against CUDA where a GPU is present). Exit code 0 when
every op passes, 1 when one fails, 2 for an unknown op name.
"""
import sys
import time

import numpy as np

HEADER = (f"{'op':<16} {'dtype':<8} {'device':<6} {'cases':>5} {'fwd err':>9} {'grad err':>9} "
          f"{'time':>7}  result")


def add_parser(sub):
    g = sub.add_parser("gradcheck", help="check every built-in op's forward and gradients",
                       description="Check each built-in op against a float64 oracle, finite "
                                   "differences, float32 against float64 and (with a GPU) CPU "
                                   "against CUDA, on hypothesis-drawn hard inputs.")
    g.add_argument("ops", nargs="*", metavar="OP", help="ops to check (default: all); see --list")
    g.add_argument("--list", action="store_true", help="name each op")
    g.add_argument("--max-examples", type=int, default=25,
                   help="hypothesis cases per op (default 25)")
    g.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: the CPU, and CUDA when a GPU is usable")
    return g


def run(args, out=None, err=None):
    out, err = out or sys.stdout, err or sys.stderr
    from .testing import CheckFailure, check_op, default_devices
    from .testing.builtin_ops import BUILTIN_OPS
    if args.list:
        for op in BUILTIN_OPS.values():
            print(f"{op.name:<16} {op.about}", file=out)
        return 0
    unknown = [n for n in args.ops if n not in BUILTIN_OPS]
    if unknown:
        print(f"tinynorm gradcheck: unknown op {', '.join(map(repr, unknown))}; valid names: "
              f"{', '.join(BUILTIN_OPS)}", file=err)
        return 2
    if args.max_examples < 1:
        print("tinynorm gradcheck: --max-examples must be >= 1", file=err)
        return 2
    if args.device == "auto":
        devices = default_devices()
    elif args.device == "cuda":
        from . import gpu
        if not gpu.is_available():
            print("tinynorm gradcheck: --device cuda needs CuPy and an NVIDIA GPU; none was found",
                  file=err)
            return 2
        devices = ("cpu", "cuda")
    else:
        devices = ("cpu",)
    from .kernels import compiled_cache_present
    if not compiled_cache_present():
        print("compiling kernels, first run only...", file=out, flush=True)
    names = args.ops or list(BUILTIN_OPS)
    print(HEADER, file=out, flush=True)
    failures = []
    start = time.perf_counter()
    for name in names:
        op = BUILTIN_OPS[name]
        t0 = time.perf_counter()
        try:
            report = check_op(op.fn, op.oracle, op.inputs, devices=devices,
                              max_examples=args.max_examples, seed=args.seed, wrt=op.wrt)
        except CheckFailure as e:
            failures.append((name, e))
            print(f"{name:<16} {np.dtype(e.dtype).name:<8} {e.device:<6} {'':>5} {'':>9} "
                  f"{'':>9} {time.perf_counter() - t0:>6.1f}s  FAIL: {e.check}", file=out,
                  flush=True)
            continue
        except Exception as e:  # noqa: BLE001 - an op that raises is a failure to report, not a crash
            failures.append((name, e))
            print(f"{name:<16} {'':<8} {'':<6} {'':>5} {'':>9} {'':>9} "
                  f"{time.perf_counter() - t0:>6.1f}s  FAIL: {type(e).__name__}", file=out,
                  flush=True)
            continue
        for row in report.rows.values():
            g = "-" if row["grad_error"] is None else f"{row['grad_error']:.1e}"
            print(f"{name:<16} {row['dtype']:<8} {row['device']:<6} {row['cases']:>5} "
                  f"{row['forward_error']:>9.1e} {g:>9} {row['seconds']:>6.2f}s  ok", file=out,
                  flush=True)
    total = time.perf_counter() - start
    print(f"{len(names) - len(failures)} of {len(names)} ops passed in {total:.1f}s "
          "(errors relative to the largest expected value; tolerance float32 1e-4, float64 1e-9, "
          "finite differences 1e-6)", file=out)
    for name, e in failures:
        notes = "".join("\n" + n for n in getattr(e, "__notes__", ()))
        print(f"\n{name}: {type(e).__name__}: {e}{notes}", file=out)
    return 1 if failures else 0
