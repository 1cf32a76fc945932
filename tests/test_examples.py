"""examples/: every script runs with --quick and prints what it teaches; mlp_digits reaches 97%."""
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def run(args, launcher=(), timeout=300, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([*launcher, sys.executable, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def script(name):
    return os.path.join(EXAMPLES, name)


def test_every_example_says_what_it_teaches():
    names = sorted(n for n in os.listdir(EXAMPLES) if n.endswith(".py"))
    mine = {"mlp_digits.py", "small_batch.py", "custom_op.py", "sync_bn_workers.py",
            "sync_bn_mpi.py", "bn_lstm.py", "gpu_train.py", "port_from_pytorch.py",
            "second_order.py"}
    assert mine <= set(names)
    for n in sorted(mine):
        with open(os.path.join(EXAMPLES, n)) as f:
            assert f.read().startswith('"""Teaches: '), n


def test_mlp_digits_quick_and_full_run_reaches_97_percent():
    out = run([script("mlp_digits.py"), "--quick"])
    assert "epoch  1" in out and "final test accuracy" in out
    acc = float(re.search(r"final test accuracy (\S+)", run([script("mlp_digits.py")])).group(1))
    assert acc >= 0.97


def test_port_from_pytorch_quick(tmp_path):
    out = run([script("port_from_pytorch.py"), "--quick", "--save-model"], cwd=tmp_path)
    assert "Train Epoch: 1 [0/256 (0%)]" in out
    acc = int(re.search(r"Accuracy: (\d+)/360", out).group(1))
    assert acc > 36, out
    import tinynorm as tn
    assert "fc1.weight" in tn.load(tmp_path / "mnist_cnn.pt")


def test_small_batch_quick():
    out = run([script("small_batch.py"), "--quick"])
    lines = [line for line in out.splitlines() if "batch 2" in line]
    assert [line.split()[0] for line in lines] == ["BatchNorm2d", "GroupNorm(4)"]
    assert "for 0.0% of test images" in lines[1]


def test_custom_op_passes_and_catches_the_wrong_backward():
    out = run([script("custom_op.py"), "--quick"])
    assert "SoftClip passes check_op" in out and "WrongSoftClip is caught" in out
    assert "gradient against finite differences" in out and "worst element at index" in out


def test_sync_bn_workers_equal_one_process():
    out = run([script("sync_bn_workers.py"), "--quick"])
    sync = re.search(r"SyncBatchNorm .* max \|y diff\| (\S+), max \|dx diff\| (\S+)", out)
    local = re.search(r"per worker .* max \|y diff\| (\S+),", out)
    assert float(sync.group(1)) < 1e-12 and float(sync.group(2)) < 1e-12
    assert float(local.group(1)) > 0.1


def test_sync_bn_mpi_two_ranks():
    pytest.importorskip("mpi4py")
    from tinynorm.distributed.launch import mpiexec_path
    mpiexec = mpiexec_path() or shutil.which("mpiexec")
    if not mpiexec:
        pytest.skip("no mpiexec")
    out = run([script("sync_bn_mpi.py"), "--quick"], launcher=(mpiexec, "-n", "2"))
    m = re.search(r"on 2 MPI ranks .* max \|y diff\| (\S+), max \|dx diff\| (\S+)", out)
    assert m and float(m.group(1)) < 1e-12 and float(m.group(2)) < 1e-12
    assert out.count("SyncBatchNorm on") == 1


def test_second_order_quick():
    out = run([script("second_order.py"), "--quick"])
    assert "Hessian-vector product" in out and "final gradient penalty" in out


def test_bn_lstm_quick():
    out = run([script("bn_lstm.py"), "--quick"])
    assert "BN-LSTM  1 epoch(s): test accuracy" in out and "LSTM     1 epoch(s)" in out


def test_gpu_train_quick_exits_0_with_or_without_a_gpu():
    from tinynorm import cuda
    out = run([script("gpu_train.py"), "--quick"])
    assert ("test accuracy on cuda" in out) if cuda.is_available() else ("no GPU here" in out)
