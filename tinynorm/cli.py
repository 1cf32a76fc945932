"""``tinynorm`` command line: ``tinynorm train ...``."""
import argparse
import sys


def _parser():
    p = argparse.ArgumentParser(prog="tinynorm", description="tinynorm: normalization layers on a small autograd")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model on the built-in digits (or MNIST IDX files)")
    t.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    t.add_argument("--norm", choices=["bn", "none"], default="bn")
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="adam")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data", metavar="DIR", default=None,
                   help="a directory with MNIST/Fashion-MNIST IDX files (.gz or raw)")
    t.add_argument("--save", metavar="PATH", default=None, help="write the state_dict as .npz")
    t.add_argument("--workers", type=int, default=1,
                   help="split each batch across N worker processes with SyncBatchNorm")
    t.add_argument("--backend", choices=["multiprocessing", "mpi"], default="multiprocessing",
                   help="how workers exchange statistics; 'mpi' runs under mpiexec -n N")
    t.add_argument("--timeout", type=float, default=60.0,
                   help="seconds a worker waits at an exchange before failing (multiprocessing)")
    return p


def _positive(args, name):
    if getattr(args, name) < 1:
        raise SystemExit(f"tinynorm train: --{name.replace('_', '-')} must be >= 1")


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.command == "train":
        for name in ("epochs", "batch_size", "workers"):
            _positive(args, name)
        if args.lr <= 0:
            raise SystemExit("tinynorm train: --lr must be positive")
        if args.timeout <= 0:
            raise SystemExit("tinynorm train: --timeout must be positive")
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
            train(model=args.model, norm=args.norm, epochs=args.epochs, batch_size=args.batch_size,
                  lr=args.lr, optimizer=args.optimizer, seed=args.seed, data=args.data, save=args.save,
                  workers=args.workers, backend=args.backend, timeout=args.timeout)
        except (ValueError, FileNotFoundError, DistributedError) as e:
            if rank == 0 or isinstance(e, DistributedError):
                print(f"tinynorm train: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
