"""Teaches: profiling one training step with tinynorm.profiler and reading its table.

The default CNN of `tinynorm train --model cnn` (BatchNorm) on the built-in digits. A few
warm-up steps run first (Numba loads or compiles its kernels on first use, which would
otherwise dominate), then `--steps` steps are profiled. The table lists every Function's
forward (its class name, e.g. `BatchNorm`), its backward (its grad_fn name, e.g.
`NativeBatchNormBackward0`), every kernel call (`kernel:<family>.<name>`, with the bytes of
the arrays it was handed, hence GB/s), `Optimizer.step#Adam.step` and the data loader.
"Self time" excludes the ranges nested inside a row; "Total time" includes them.

    python examples/profile_step.py            # 3 warm-up steps, 5 profiled, batch 64
    python examples/profile_step.py --trace trace.json   # open in Perfetto / chrome://tracing
    python examples/profile_step.py --quick    # 1 warm-up step, 1 profiled, batch 16
"""
import argparse

import tinynorm as tn
from tinynorm import functional as F
from tinynorm import profiler
from tinynorm.data import DataLoader, load_digits
from tinynorm.models import build_model


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny batch, one step")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--trace", metavar="PATH", help="also write a Chrome trace-event JSON")
    p.add_argument("--rows", type=int, default=20)
    args = p.parse_args()
    warmup, steps, batch = (1, 1, 16) if args.quick else (3, args.steps, args.batch_size)

    tn.manual_seed(0)
    x, y = load_digits("train")
    net = build_model("cnn", x.shape[1:], 10, "bn")
    opt = tn.optim.Adam(net.parameters(), lr=1e-3)
    loader = DataLoader((x, y), batch_size=batch, shuffle=True, drop_last=True, seed=0)

    def train_steps(n):
        done = 0
        while done < n:
            for xb, yb in loader:
                opt.zero_grad()
                loss = F.cross_entropy(net(tn.Tensor(xb)), yb)
                loss.backward()
                opt.step()
                done += 1
                if done == n:
                    return loss

    train_steps(warmup)
    with profiler.profile() as prof:
        loss = train_steps(steps)
    print(f"profiled {steps} step(s) of the default CNN (bn), batch {batch}; "
          f"last loss {float(loss.item()):.4f}")
    print(prof.key_averages().table(sort_by="self_time_total", row_limit=args.rows))
    if args.trace:
        prof.export_chrome_trace(args.trace)
        print(f"wrote {args.trace} (open it in https://ui.perfetto.dev or chrome://tracing)")


if __name__ == "__main__":
    main()
