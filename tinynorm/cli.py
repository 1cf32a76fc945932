"""``tinynorm`` command line: ``tinynorm train ...``, ``tinynorm study ...`` and ``tinynorm gradcheck ...`` (also ``python -m tinynorm``)."""
import argparse
import math
import os
import sys

from . import norm_registry as registry
from .norm_registry import NormOptions


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
    t.add_argument("--model", choices=list(registry.MODELS), default="mlp",
                   help="lstm reads each digit as a sequence of rows (or of pixels, --pixels)")
    t.add_argument("--norm", choices=list(registry.NORMS), default="bn",
                   help=", ".join(f"{k} {n.name}" for k, n in registry.NORMS.items()))
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
    t.add_argument("--permuted", action="store_true",
                   help="--model lstm: pixels in one fixed random order (implies --pixels)")
    t.add_argument("--placement", choices=["before", "after"], default=None,
                   help="put the norm before or after the ReLU (default: the CNN before, the "
                        "MLP after, as the seed article)")
    t.add_argument("--bn-stats", choices=["running", "population"], default="running",
                   help="test with BN's running averages, or with population statistics "
                        "recomputed over the training set (the BN paper's inference rule)")
    t.add_argument("--workers", type=_integer(1), default=1,
                   help="split each batch across N worker processes with SyncBatchNorm")
    t.add_argument("--backend", choices=["multiprocessing", "mpi"], default="multiprocessing",
                   help="how workers exchange statistics; 'mpi' runs under mpiexec -n N")
    t.add_argument("--timeout", type=_positive_float, default=60.0,
                   help="seconds a worker waits at an exchange before failing (multiprocessing)")
    t.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="cuda trains on the GPU through CuPy and numba.cuda kernels")
    t.add_argument("--profile", action="store_true",
                   help="record every op, kernel, optimizer step and batch (tinynorm.profiler) and "
                        "print the table after training (this process only: not with --workers N > 1)")
    _study_parser(sub)
    from .gradcheck_cli import add_parser
    add_parser(sub)
    p.train_parser = t
    return p


def _read_by(norms, why=""):
    """(does this run read the flag?, what reads it) for a flag that only ``norms`` read."""
    return (lambda a: a.norm in norms), f"--norm {registry.listing(norms)}{why}"


# Train flags that only some runs read: (dest, does this run read it?, what reads it). --pixels,
# --permuted and --placement are refused by build_model, for the study's calls too.
_SCOPED = (
    ("groups", *_read_by(registry.reading("groups"))),
    ("window", *_read_by(registry.reading("window"))),
    ("burn_in", *_read_by(registry.reading("burn_in"))),
    ("renorm_warmup", *_read_by(registry.reading("renorm_schedule"))),
    ("renorm_rmax_steps", *_read_by(registry.reading("renorm_schedule"))),
    ("renorm_dmax_steps", *_read_by(registry.reading("renorm_schedule"))),
    ("bn_stats", *_read_by(registry.keys(population=True),
                           " (the norms whose running statistics it recomputes)")),
    ("timeout", lambda a: a.workers > 1 and a.backend == "multiprocessing",
     "--workers N > 1 with --backend multiprocessing (the exchanges it times)"),
    ("profile", lambda a: a.workers == 1 or a.backend != "multiprocessing",
     "one process per run (--workers 1, or each rank under --backend mpi): the workers of "
     "--workers N train in processes of their own, and its table would be empty"),
)


def _ignored_flag(argv, args):
    """The first explicitly given train flag this run would ignore, as an error message; None if none."""
    p = _parser()
    for action in p.train_parser._actions:
        action.default = argparse.SUPPRESS
    given = vars(p.parse_args(argv))
    for dest, reads, scope in _SCOPED:
        if dest in given and not reads(args):
            flag = "--" + dest.replace("_", "-")
            return (f"{flag} is read only with {scope}; this run (--model {args.model} --norm "
                    f"{args.norm}, --workers {args.workers}, --backend {args.backend}) would "
                    "ignore it, so drop it")
    return None


def _study_parser(sub):
    from .study import EXPERIMENTS
    listing = "; ".join(EXPERIMENTS)
    s = sub.add_parser("study", help="measure BN's three defects and the norms that fix them",
                       description="Train the runs behind each experiment's claim and compute its "
                                   "verdicts from the numbers. Experiments: " + listing)
    s.add_argument("experiments", nargs="*", metavar="EXPERIMENT",
                   help="experiments to run (default: all); see --list")
    s.add_argument("--list", action="store_true", help="name each experiment and its claim")
    s.add_argument("--seeds", type=_integer(1), default=None,
                   help="seeds per setting (default 3; 1 with --quick)")
    s.add_argument("--quick", action="store_true",
                   help="1 seed, fewer points and epochs: a smoke run of a minute or two")
    s.add_argument("--out", default="study", metavar="DIR",
                   help="where the JSON, PNG and summary.md go (default ./study)")
    s.add_argument("--data", metavar="DIR", default=None,
                   help="MNIST/Fashion-MNIST IDX files instead of digits (far longer runs)")
    s.add_argument("--jobs", type=_integer(1), default=None,
                   help="worker processes, one Numba thread each (default: the number of cores)")


def _study(args):
    from .study import EXPERIMENTS, StudyError, run_study
    if args.list:
        for name, exp in EXPERIMENTS.items():
            print(f"{name:<11} {exp.CLAIM}")
        return 0
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        print(f"tinynorm study: --out {args.out} is a file; give a directory for the results",
              file=sys.stderr)
        return 2
    from .kernels import compiled_cache_present
    if not compiled_cache_present():
        print("compiling kernels, first run only...", flush=True)
    try:
        run_study(args.experiments or None, seeds=args.seeds, quick=args.quick, out=args.out,
                  data=args.data, jobs=args.jobs)
    except (ValueError, OSError, StudyError) as e:
        print(f"tinynorm study: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "study":
        return _study(args)
    if args.command == "gradcheck":
        from .gradcheck_cli import run
        return run(args)
    if args.command == "train":
        ignored = _ignored_flag(argv, args)
        if ignored:
            print(f"tinynorm train: {ignored}", file=sys.stderr)
            return 2
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
        from .distributed.base import USER_ERRORS
        from .train import train
        try:
            options = NormOptions(groups=args.groups, window=args.window, burn_in=args.burn_in,
                                  renorm_schedule=(args.renorm_warmup, args.renorm_rmax_steps,
                                                   args.renorm_dmax_steps),
                                  placement=args.placement)
            prof = None
            if args.profile:
                from .profiler import profile
                prof = profile().__enter__()
            train(model=args.model, norm=args.norm, epochs=args.epochs, batch_size=args.batch_size,
                  lr=args.lr, optimizer=args.optimizer, seed=args.seed, data=args.data, save=args.save,
                  workers=args.workers, backend=args.backend, timeout=args.timeout, options=options,
                  subdivisions=args.subdivisions, pixels=args.pixels or args.permuted,
                  permuted=args.permuted, device=args.device, bn_stats=args.bn_stats,
                  resume=args.resume)
            if prof is not None:
                prof.stop()
                print(prof.key_averages().table(sort_by="self_time_total", row_limit=20))
        except USER_ERRORS as e:
            if args.backend == "mpi":
                print(f"tinynorm train: rank {rank}: {e}", file=sys.stderr, flush=True)
            else:
                print(f"tinynorm train: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
