"""Saving without loss: atomic files, no pickles, safetensors both ways with PyTorch, and training
runs that resume bitwise, also after a real SIGKILL."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tinynorm
from tinynorm import checkpoint, nn, serialization
from tinynorm.models import NormOptions
from tinynorm.train import train


def _state_equal(a, b):
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_save_load_round_trip_keeps_dtypes_and_shapes(tmp_path, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "n": np.array(3, np.int64),
             "b": np.ones(2, np.float64), "m": np.array([True, False])}
    serialization.save(state, tmp_path / f"s{suffix}")
    back = serialization.load(tmp_path / f"s{suffix}")
    assert set(back) == set(state)
    for k in state:
        assert back[k].dtype == state[k].dtype and back[k].shape == state[k].shape
        np.testing.assert_array_equal(back[k], state[k])


def test_a_save_that_fails_halfway_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    serialization.save({"a": np.ones(3)}, path)

    def broken(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        serialization.save({"a": np.zeros(3)}, path)
    monkeypatch.undo()
    np.testing.assert_array_equal(serialization.load(path)["a"], np.ones(3))
    assert os.listdir(tmp_path) == ["m.npz"]


@pytest.mark.parametrize("dtype", [object, [("x", object)], [("x", np.float32), ("y", object)]])
def test_object_dtypes_are_refused_on_save_and_on_load(tmp_path, dtype):
    bad = np.zeros(2, dtype=dtype)
    with pytest.raises(ValueError, match="only plain numeric arrays"):
        serialization.save({"a": bad}, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
    np.savez(tmp_path / "y.npz", a=bad)
    with pytest.raises(ValueError, match="y.npz"):
        serialization.load(tmp_path / "y.npz")


def test_load_errors_name_the_path(tmp_path):
    np.save(tmp_path / "a.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"a.npy: is a single .npy array"):
        serialization.load(tmp_path / "a.npy")
    serialization.save({"a": np.ones(100)}, tmp_path / "t.npz")
    data = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r"t.npz: corrupt or truncated"):
        serialization.load(tmp_path / "t.npz")
    (tmp_path / "junk.npz").write_bytes(b"hello")
    with pytest.raises(ValueError, match=r"junk.npz: corrupt"):
        serialization.load(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="is a directory"):
        serialization.load(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        serialization.save({"a": np.ones(1)}, tmp_path / "missing" / "m.npz")


def test_readme_line_works_after_a_plain_import(tmp_path):
    code = ("import tinynorm, numpy as np; tinynorm.serialization.save({'a': np.ones(2)}, 'm.npz');"
            "print(tinynorm.serialization.load('m.npz')['a'].sum())")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "2.0", out.stderr


def _torch_cnn(torch):
    tnn = torch.nn
    return tnn.Sequential(tnn.Conv2d(1, 4, 3, padding=1, bias=False), tnn.BatchNorm2d(4), tnn.ReLU(),
                          tnn.Flatten(), tnn.Linear(4 * 8 * 8, 10))


def _ours_cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 8 * 8, 10))


def test_safetensors_state_dicts_move_both_ways_between_tinynorm_and_torch(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    ours = _ours_cnn()
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32)
    ours(tinynorm.tensor(x))
    serialization.save(ours.state_dict(), tmp_path / "ours.safetensors")
    theirs = _torch_cnn(torch)
    theirs.load_state_dict(st_torch.load_file(str(tmp_path / "ours.safetensors")))
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        np.testing.assert_allclose(theirs(torch.from_numpy(x)).numpy(),
                                   ours(tinynorm.tensor(x)).numpy(), rtol=1e-5, atol=1e-5)
    back = _torch_cnn(torch)
    back.train()
    back(torch.from_numpy(x))
    st_torch.save_file(back.state_dict(), str(tmp_path / "theirs.safetensors"))
    mine = _ours_cnn()
    mine.load_state_dict(serialization.load(tmp_path / "theirs.safetensors"))
    _state_equal(mine.state_dict(), {k: v.numpy() for k, v in back.state_dict().items()})


@pytest.mark.parametrize("model, norm, extra", [
    ("mlp", "bn", {}), ("cnn", "cbn", dict(options=NormOptions(window=3, burn_in=2))),
    ("cnn", "cmbn", dict(subdivisions=3)), ("mlp", "brn", {}),
    ("mlp", "ln", dict(optimizer="sgd", lr=0.05))])
def test_resume_after_epoch_k_ends_bitwise_equal(tmp_path, model, norm, extra):
    """Every state the loop keeps survives: CBN's window, CmBN's step, BRN's step count, Adam/SGD."""
    kw = dict(model=model, norm=norm, quiet=True, batch_size=128, **extra)
    whole = train(epochs=3, **kw)
    path = tmp_path / "ck.npz"
    train(epochs=1, save=path, **kw)
    assert checkpoint.load(path).epoch == 1
    resumed = train(epochs=3, save=path, resume=path, **kw)
    assert resumed["history"] == whole["history"]
    assert resumed["test_accuracy"] == whole["test_accuracy"]
    _state_equal(resumed["model"].state_dict(), whole["model"].state_dict())
    assert checkpoint.load(path).epoch == 3


def test_resume_of_non_iid_batches_ends_bitwise_equal(tmp_path):
    kw = dict(model="mlp", batch_size=64, batches="non-iid", quiet=True)
    train(epochs=1, save=tmp_path / "n.npz", **kw)
    resumed = train(epochs=3, resume=tmp_path / "n.npz", **kw)
    whole = train(epochs=3, **kw)
    assert resumed["history"] == whole["history"]
    _state_equal(resumed["model"].state_dict(), whole["model"].state_dict())


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    path = tmp_path / "ck.npz"
    train(model="mlp", epochs=1, batch_size=256, save=path, quiet=True)
    with pytest.raises(ValueError, match="lr: 0.001 in the checkpoint, 0.01 now"):
        train(model="mlp", epochs=2, batch_size=256, lr=0.01, resume=path, quiet=True)
    serialization.save({"a": np.ones(2)}, tmp_path / "plain.npz")
    with pytest.raises(ValueError, match="not a tinynorm training checkpoint"):
        train(model="mlp", epochs=2, resume=tmp_path / "plain.npz", quiet=True)


def _cli(*args):
    return [sys.executable, "-m", "tinynorm", "train", *map(str, args)]


def _epoch_of(path):
    try:
        return checkpoint.load(path).epoch
    except (OSError, ValueError):
        return 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_killed_with_sigkill_resumes_bitwise(tmp_path, workers):
    """A real process is killed mid-run (its whole process group: workers too), then resumed."""
    common = ["--model", "mlp", "--epochs", "12", "--batch-size", "32", "--workers", workers]
    ref = tmp_path / "ref.npz"
    done = subprocess.run(_cli(*common, "--save", ref), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "ck.npz"
    proc = subprocess.Popen(_cli(*common, "--save", path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while _epoch_of(path) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL
    killed_at = _epoch_of(path)
    assert 2 <= killed_at < 12, killed_at
    again = subprocess.run(_cli(*common, "--save", path, "--resume", path), capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    a, b = checkpoint.load(ref), checkpoint.load(path)
    assert b.epoch == 12 and a.meta["history"] == b.meta["history"]
    _state_equal(a.model_state, b.model_state)
    assert again.stdout.count("/12 [") == 12 - killed_at
    accuracy = [out.stdout.split("test accuracy")[1].split()[0] for out in (done, again)]
    assert accuracy[0] == accuracy[1]


def test_python_dash_m_tinynorm_runs_the_cli():
    proc = subprocess.run([sys.executable, "-m", "tinynorm", "train", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--resume" in proc.stdout


def test_mpi_job_aborts_when_one_rank_raises(tmp_path):
    """``mpiexec -n 2 python -m mpi4py -m tinynorm train --backend mpi``: rank 1 raises mid-run,
    rank 0 waits in a collective; the job must end (non-zero) instead of hanging."""
    pytest.importorskip("mpi4py")
    from tinynorm.distributed.launch import mpiexec_path
    mpiexec = mpiexec_path()
    if mpiexec is None:
        pytest.skip("no mpiexec")
    (tmp_path / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('PMI_RANK') == '1':\n"
        "    import tinynorm.distributed as d\n"
        "    calls = [0]\n"
        "    real = d.allreduce_gradients\n"
        "    def failing(*a, **k):\n"
        "        calls[0] += 1\n"
        "        if calls[0] == 5:\n"
        "            raise RuntimeError('rank 1 fails on purpose')\n"
        "        return real(*a, **k)\n"
        "    d.allreduce_gradients = failing\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path)] + [p for p in sys.path if p]))
    start = time.monotonic()
    proc = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "mpi4py", "-m", "tinynorm",
                           "train", "--backend", "mpi", "--epochs", "3"], env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode != 0
    assert "rank 1 fails on purpose" in proc.stderr
    assert time.monotonic() - start < 120
