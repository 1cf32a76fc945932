"""tinynorm.distributed: collectives, data-parallel training equal to single-process training,
faults that end in bounded time, and the same (with SyncBatchNorm) under MPI.

SyncBatchNorm's own tests are in test_sync_batch_norm.py."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import tinynorm.distributed as dist

import distributed_workers as W
from oracles.sync_batch_norm import check_sync_bn


# ---- collectives ----------------------------------------------------------------

def check_collectives(results):
    w = len(results)
    for r, res in enumerate(results):
        assert res["rank"] == r and res["world"] == w
        np.testing.assert_array_equal(res["sum"], np.full(3, w * (w + 1) / 2))
        np.testing.assert_array_equal(res["mean"], np.full(3, (w + 1) / 2))
        np.testing.assert_array_equal(res["max"], [w - 1, 0])
        np.testing.assert_array_equal(res["gather"], [np.arange(4) + 10 * q for q in range(w)])
        assert res["gather"].dtype == np.int32 and res["empty"].shape == (w, 0, 3)
        np.testing.assert_array_equal(res["bcast"], np.arange(5.0) + w - 1)
        np.testing.assert_array_equal(res["big"], np.arange(70000.0) * (w * (w + 1) / 2))
        np.testing.assert_array_equal(res["bigcast"], np.arange(70000.0))


def test_single_process_is_the_default():
    comm = dist.get_communicator()
    assert (comm.rank, comm.world_size, comm.backend) == (0, 1, "single")
    check_collectives([W.collectives()])
    with pytest.raises(ValueError, match="unknown reduction"):
        comm.allreduce(np.ones(2), op="prod")
    with pytest.raises(ValueError, match="src rank 3"):
        comm.broadcast(np.ones(2), src=3)


def test_shared_memory_collectives_with_small_slots():
    results = dist.launch(W.collectives, 3, slot_bytes=4096, timeout=60)
    check_collectives(results)
    assert all(r["threads"] >= 1 for r in results)


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown backend 'nccl'"):
        dist.init_process_group("nccl")


# ---- data-parallel training ---------------------------------------------------------

def test_data_parallel_training_equals_single_process_training():
    ref = W.single_train(steps=4)
    results = dist.launch(W.dp_train, 3, kwargs=dict(steps=4, shards=[5, 0, 5]), timeout=120)
    for rank, state in enumerate(results):
        assert list(state) == list(ref)
        for k in ref:
            np.testing.assert_allclose(state[k], ref[k], rtol=1e-10, atol=1e-12,
                                       err_msg=f"{k} on rank {rank}")


# ---- faults ------------------------------------------------------------------------

@pytest.mark.parametrize("kind, pattern", [
    ("raise", r"rank 1 failed: ValueError: boom from the test"),
    ("kill", r"rank 1 failed: WorkerDied: process killed by signal SIGKILL"),
    ("hang", r"rank 0 failed: ExchangeTimeout: rank 0 waited 1 s at exchange 2 .*rank\(s\) 1 never arrived"),
])
def test_a_failing_worker_ends_the_run_with_its_rank_in_bounded_time(kind, pattern):
    start = time.monotonic()
    with pytest.raises(dist.WorkerError, match=pattern) as info:
        dist.launch(W.fault, 2, args=(kind,), timeout=1.0, grace=2.0)
    assert time.monotonic() - start < 25
    assert info.value.rank == (0 if kind == "hang" else 1)


def test_debug_mode_names_ranks_at_different_exchanges():
    with pytest.raises(dist.WorkerError, match=r"rank 0 at 'layer0 forward.*rank 1 at 'layer1 forward"):
        dist.launch(W.mismatched_tags, 2, debug=True, timeout=10)


def test_different_payload_sizes_are_an_error_without_debug():
    with pytest.raises(dist.WorkerError, match=r"different sizes: rank 0: 32 bytes, rank 1: 40 bytes"):
        dist.launch(W.mismatched_sizes, 2, timeout=10)


# ---- MPI ----------------------------------------------------------------------------

def needs_mpi():
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed (pip install '.[mpi]')")
    from tinynorm.distributed.launch import mpiexec_path
    assert mpiexec_path(), "mpi4py is installed but no mpiexec was found (pip install mpich)"


def test_mpi_collectives_sync_batch_norm_and_data_parallel_training():
    needs_mpi()
    check_collectives(dist.launch(W.collectives, 2, backend="mpi", debug=True, timeout=300))
    check_sync_bn(dist.launch(W.sync_bn_cases, 2, backend="mpi", timeout=300))
    ref = W.single_train(steps=4)
    for rank, state in enumerate(dist.launch(W.dp_train, 2, kwargs=dict(steps=4), backend="mpi",
                                             timeout=300)):
        for k in ref:
            np.testing.assert_allclose(state[k], ref[k], rtol=1e-10, atol=1e-12,
                                       err_msg=f"{k} on rank {rank}")


def test_mpi_raising_rank_aborts_the_job_with_its_name():
    needs_mpi()
    start = time.monotonic()
    with pytest.raises(dist.WorkerError, match="rank 1 failed: ValueError: boom from the test"):
        dist.launch(W.fault, 2, args=("raise",), backend="mpi", timeout=120)
    assert time.monotonic() - start < 60


def test_mpi_debug_mode_names_ranks_at_different_exchanges():
    needs_mpi()
    with pytest.raises(dist.WorkerError, match=r"rank 0 at 'layer0 forward.*rank 1 at 'layer1 forward"):
        dist.launch(W.mismatched_tags, 2, backend="mpi", debug=True, timeout=120)


# ---- tinynorm train --workers / --backend mpi ---------------------------------------------

def test_train_with_two_workers_matches_one_process():
    # SGD, whose update is linear in the gradient: Adam's lr * m / sqrt(v) turns the rounding
    # differences of gradients near zero into steps of size lr, so its weights cannot be compared.
    from tinynorm.train import train
    kw = dict(model="cnn", epochs=1, batch_size=64, quiet=True, optimizer="sgd", lr=0.01)
    one = train(**kw)
    two = train(**kw, workers=2)
    np.testing.assert_allclose(two["history"], one["history"], rtol=1e-5)
    assert abs(two["test_accuracy"] - one["test_accuracy"]) <= 1 / 360
    for (k, a), (k2, b) in zip(one["model"].state_dict().items(), two["model"].state_dict().items()):
        assert k == k2
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=k)


def test_cli_rejects_bad_worker_settings(capsys):
    from tinynorm.cli import main
    with pytest.raises(SystemExit):
        main(["train", "--workers", "0"])
    assert "argument --workers: must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--timeout", "0"])
    assert "argument --timeout: must be a finite number > 0" in capsys.readouterr().err


def test_mpiexec_cli_training_prints_on_rank_zero_only():
    needs_mpi()
    from tinynorm.distributed.launch import mpiexec_path
    exe = os.path.join(os.path.dirname(sys.executable), "tinynorm")
    cmd = [mpiexec_path(), "-n", "2", exe if os.path.exists(exe) else "tinynorm", "train",
           "--backend", "mpi", "--epochs", "1", "--batch-size", "128"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("test accuracy") == 1 and "2 workers" in proc.stdout
