"""``tinynorm`` command line: ``tinynorm train ...`` (also ``python -m tinynorm``)."""
import argparse
import math
import sys

from .models import NORMS, NormOptions


def _integer(low):
    """An argparse type: an integer >= ``low`` (argparse names the flag in its error)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def _positive_float(text):
    """An argparse type: a finite number > 0 (NaN and inf are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _parser():
    p = argparse.ArgumentParser(prog="tinynorm", description="tinynorm: normalization layers on a small autograd")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model on the built-in digits (or MNIST IDX files)")
    t.add_argument("--model", choices=["mlp", "cnn", "lstm"], default="mlp",
                   help="lstm reads each digit as a sequence of rows (or of pixels, --pixels)")
    t.add_argument("--norm", choices=list(NORMS), default="bn",
                   help="bn batch, brn batch renorm, cbn cross-iteration, cmbn cross-mini-batch, "
                        "gn group, ln layer, in instance, frn filter response + TLU, lrn local "
                        "response, wn weight, rms RMS norm, none")
    t.add_argument("--epochs", type=_integer(1), default=20)
    t.add_argument("--batch-size", type=_integer(1), default=64)
    t.add_argument("--lr", type=_positive_float, default=1e-3)
    t.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="adam")
    t.add_argument("--seed", type=_integer(0), default=0)
    t.add_argument("--data", metavar="DIR", default=None,
                   help="a directory with MNIST/Fashion-MNIST IDX files (.gz or raw)")
    t.add_argument("--save", metavar="PATH", default=None,
                   help="write a checkpoint (model, optimizer, epoch, RNG and data order) after "
                        "every epoch, as .npz or .safetensors")
    t.add_argument("--resume", metavar="PATH", default=None,
                   help="continue the run that wrote this checkpoint (same settings; --epochs is "
                        "the total)")
    t.add_argument("--groups", type=_integer(1), default=8, help="GroupNorm groups (--norm gn)")
    t.add_argument("--window", type=_integer(1), default=4,
                   help="iterations Cross-Iteration BN averages (--norm cbn)")
    t.add_argument("--burn-in", type=_integer(0), default=100,
                   help="iterations of plain BN before the CBN window is used (--norm cbn)")
    t.add_argument("--subdivisions", type=_integer(1), default=None,
                   help="mini-batches per optimizer step, gradients accumulated (default 4 for "
                        "--norm cmbn, else 1)")
    t.add_argument("--renorm-warmup", type=_integer(0), default=100,
                   help="Batch Renorm steps with rmax=1, dmax=0 (--norm brn)")
    t.add_argument("--renorm-rmax-steps", type=_integer(0), default=400,
                   help="step at which Batch Renorm's rmax reaches 3")
    t.add_argument("--renorm-dmax-steps", type=_integer(0), default=250,
                   help="step at which Batch Renorm's dmax reaches 5")
    t.add_argument("--pixels", action="store_true",
                   help="--model lstm: one pixel per step instead of one row")
    t.add_argument("--workers", type=_integer(1), default=1,
                   help="split each batch across N worker processes with SyncBatchNorm")
    t.add_argument("--backend", choices=["multiprocessing", "mpi"], default="multiprocessing",
                   help="how workers exchange statistics; 'mpi' runs under mpiexec -n N")
    t.add_argument("--timeout", type=_positive_float, default=60.0,
                   help="seconds a worker waits at an exchange before failing (multiprocessing)")
    t.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="cuda trains on the GPU through CuPy and numba.cuda kernels")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "train":
        rank = 0
        if args.backend == "mpi":
            from . import distributed
            try:
                rank = distributed.init_process_group("mpi").rank
            except ImportError as e:
                print(f"tinynorm train: {e}", file=sys.stderr)
                return 2
        from .kernels import compiled_cache_present
        if rank == 0 and not compiled_cache_present():
            print("compiling kernels, first run only...", flush=True)
        from .distributed import DistributedError
        from .train import train
        try:
            options = NormOptions(groups=args.groups, window=args.window, burn_in=args.burn_in,
                                  renorm_schedule=(args.renorm_warmup, args.renorm_rmax_steps,
                                                   args.renorm_dmax_steps))
            train(model=args.model, norm=args.norm, epochs=args.epochs, batch_size=args.batch_size,
                  lr=args.lr, optimizer=args.optimizer, seed=args.seed, data=args.data, save=args.save,
                  workers=args.workers, backend=args.backend, timeout=args.timeout, options=options,
                  subdivisions=args.subdivisions, pixels=args.pixels, device=args.device,
                  resume=args.resume)
        except (ValueError, OSError, ImportError, DistributedError) as e:
            if args.backend == "mpi":
                print(f"tinynorm train: rank {rank}: {e}", file=sys.stderr, flush=True)
            else:
                print(f"tinynorm train: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
