"""Run one function on N spawned worker processes that share a communicator.

``launch(fn, nprocs)`` starts ``nprocs`` processes (the 'spawn' start method,
so each starts clean: no forked Numba thread pool or OpenBLAS state), makes a
:class:`SharedMemoryCommunicator` the default communicator of each, calls
``fn(*args, **kwargs)`` on every rank and returns the ranks' return values,
by rank.

Faults end in bounded time: a worker that raises records why and sets the
abort word, so its peers stop waiting at once; a worker that dies (a signal,
``os._exit``) is noticed by the parent, which does the same on its behalf; a
worker that hangs makes its peers time out after ``timeout`` seconds. The
parent then waits ``grace`` seconds for the rest, terminates what is left and
raises :class:`WorkerError` naming the rank that failed first.
"""
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import time
import traceback

from .. import checks
from .base import USER_ERRORS, DistributedError, PeerFailure, WorkerError
from .shm import (DEFAULT_SLOT_BYTES, DIED, DONE, FAILED, SharedBlock,
                  SharedMemoryCommunicator, create_shared_block)


def _worker(fn, rank, nprocs, raw, slot_bytes, timeout, debug, threads, conn, args, kwargs):
    from . import set_communicator, share_cores
    block = SharedBlock(raw, nprocs, slot_bytes)
    try:
        if threads:
            import numba
            numba.set_num_threads(threads)
        else:
            share_cores(nprocs)
        comm = SharedMemoryCommunicator(raw, rank, nprocs, slot_bytes, timeout, debug)
        set_communicator(comm)
        result = fn(*args, **kwargs)
    except BaseException as e:
        block.mark_failed(rank, f"{type(e).__name__}: {e}")
        conn.send(("error", type(e).__name__, str(e), traceback.format_exc(),
                   isinstance(e, PeerFailure), isinstance(e, USER_ERRORS)))
        conn.close()
        os._exit(1)
    block.ctrl[block.layout.status + rank] = DONE
    try:
        conn.send(("ok", result))
    except Exception as e:
        block.mark_failed(rank, f"could not send its result: {type(e).__name__}: {e}")
        conn.send(("error", type(e).__name__, f"result of rank {rank} is not picklable: {e}",
                   traceback.format_exc(), False, False))
    conn.close()


def _describe_exit(code):
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code} without returning"


def launch(fn, nprocs, args=(), kwargs=None, timeout=60.0, grace=5.0, debug=False,
           slot_bytes=DEFAULT_SLOT_BYTES, threads_per_worker=None, backend="multiprocessing"):
    """Call ``fn(*args, **kwargs)`` on ``nprocs`` worker processes; return their results by rank.

    ``fn`` must be importable by name (a module-level function). Inside it,
    :func:`tinynorm.distributed.get_communicator` is that rank's
    communicator. With ``backend='multiprocessing'`` (spawned processes and
    shared memory) ``timeout`` bounds every wait inside an exchange; with
    ``backend='mpi'`` the ranks run under ``mpiexec -n nprocs python -m
    mpi4py`` and ``timeout`` bounds the whole job. ``debug`` checks that every
    rank is at the same exchange. ``threads_per_worker`` defaults to Numba's
    thread count divided by the ranks on this machine.
    """
    checks.integer(nprocs, "launch: nprocs", 1)
    checks.number(timeout, "launch: timeout", 0.0, low_open=True)
    checks.number(grace, "launch: grace", 0.0)
    kwargs = kwargs or {}
    if backend == "mpi":
        return _launch_mpi(fn, nprocs, args, kwargs, timeout, debug)
    if backend != "multiprocessing":
        raise ValueError(f"unknown backend {backend!r}; launch runs 'multiprocessing' or 'mpi'")
    threads = threads_per_worker
    ctx = mp.get_context("spawn")
    raw = create_shared_block(ctx, nprocs, slot_bytes)
    block = SharedBlock(raw, nprocs, slot_bytes)
    procs, conns = [], []
    for rank in range(nprocs):
        parent_end, child_end = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker, name=f"tinynorm-rank{rank}",
                        args=(fn, rank, nprocs, raw, slot_bytes, timeout, debug, threads,
                              child_end, args, kwargs))
        p.start()
        child_end.close()
        procs.append(p)
        conns.append(parent_end)
    results, errors = {}, {}
    try:
        _monitor(procs, conns, block, results, errors, grace)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
        for c in conns:
            c.close()
    if errors:
        rank, (name, message, tb, _, user) = _root_cause(errors)
        raise _failed(rank, name, message, tb, user)
    return [results[r] for r in range(nprocs)]


def _failed(rank, name, message, tb, user):
    """The WorkerError of a rank's failure: its traceback is in the message only for a bug (not
    one of USER_ERRORS, which the CLI prints as one line); ``.traceback`` always has it."""
    detail = f"\n\ntraceback of rank {rank}:\n{tb}" if tb and not user else ""
    return WorkerError(f"rank {rank} failed: {name}: {message}{detail}", rank=rank, traceback=tb)


def mpiexec_path():
    """The ``mpiexec`` beside this Python (the mpich wheel installs one there), else on PATH."""
    import shutil
    import sys
    exe = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return exe if os.path.exists(exe) else shutil.which("mpiexec")


def _launch_mpi(fn, nprocs, args, kwargs, timeout, debug):
    import pickle
    import subprocess
    import sys
    import tempfile
    from .mpi import _mpi
    _mpi()
    mpiexec = mpiexec_path()
    if mpiexec is None:
        raise DistributedError("no mpiexec found: pip install 'tinynorm[mpi]' (brings mpich)")
    with tempfile.TemporaryDirectory(prefix="tinynorm-mpi-") as jobdir:
        with open(os.path.join(jobdir, "job.pkl"), "wb") as f:
            pickle.dump((fn, args, kwargs, debug), f)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        cmd = [mpiexec, "-n", str(nprocs), sys.executable, "-m", "mpi4py", "-m",
               "tinynorm.distributed.mpi_worker", jobdir]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise WorkerError(f"the MPI job of {nprocs} ranks did not finish within {timeout:g} s; "
                              "killed") from None
        results, errors = {}, {}
        for rank in range(nprocs):
            path = os.path.join(jobdir, f"rank{rank}.pkl")
            if not os.path.exists(path):
                continue
            with open(path, "rb") as f:
                msg = pickle.load(f)
            if msg[0] == "ok":
                results[rank] = msg[1]
            else:
                errors[rank] = msg[1:]
    if errors:
        rank = min(errors)
        raise _failed(rank, *errors[rank])
    if proc.returncode or len(results) < nprocs:
        missing = [r for r in range(nprocs) if r not in results]
        raise WorkerError(f"the MPI job exited with code {proc.returncode}; rank(s) "
                          f"{', '.join(map(str, missing))} returned nothing\n{proc.stderr[-2000:]}",
                          rank=missing[0] if missing else None)
    return [results[r] for r in range(nprocs)]


def _root_cause(errors):
    """The first rank whose error is its own (not a reaction to another rank's failure)."""
    primary = {r: e for r, e in errors.items() if not e[3]}
    pool = primary or errors
    first = min(pool, key=lambda r: pool[r][-1])
    return first, pool[first][:-1]


def _monitor(procs, conns, block, results, errors, grace):
    pending = {c: r for r, c in enumerate(conns)}
    alive = {p.sentinel: r for r, p in enumerate(procs)}
    give_up = None

    def receive(conn, r):
        """Record what rank ``r`` sent on ``conn`` (nothing when the pipe broke before a message)."""
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "ok":
            results[r] = msg[1]
        else:
            errors[r] = msg[1:] + (time.monotonic(),)

    while pending or alive:
        waitables = list(pending) + list(alive)
        wait_for = None if give_up is None else max(0.0, give_up - time.monotonic())
        ready = mp.connection.wait(waitables, timeout=wait_for)
        if not ready:
            for r, p in enumerate(procs):
                if p.is_alive() and r not in results and r not in errors:
                    errors[r] = ("Unresponsive", f"still running {grace:g} s after another rank "
                                 "failed; terminated", "", True, False, time.monotonic())
            return
        for obj in ready:
            if obj in pending:
                receive(obj, pending.pop(obj))
            else:
                r = alive.pop(obj)
                procs[r].join(1.0)
                code = procs[r].exitcode
                if r in errors or r in results:
                    continue
                for c, rr in list(pending.items()):
                    if rr == r and c.poll():
                        pending.pop(c)
                        receive(c, r)
                if r in errors or r in results:
                    continue
                why = _describe_exit(code)
                block.mark_failed(r, f"process {why}", state=DIED)
                errors[r] = ("WorkerDied", f"process {why}", "", False, False, time.monotonic())
                for c, rr in list(pending.items()):
                    if rr == r:
                        pending.pop(c)
        if errors and give_up is None:
            give_up = time.monotonic() + grace
            first = min(errors, key=lambda q: errors[q][-1])
            if block.failure() is None:
                block.mark_failed(first, f"{errors[first][0]}: {errors[first][1]}",
                                  state=FAILED)


__all__ = ["launch", "WorkerError", "DistributedError"]
