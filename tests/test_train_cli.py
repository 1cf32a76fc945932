"""End-to-end: training reaches its accuracy, and the CLI runs, saves and reports errors."""
import subprocess
import sys

import numpy as np
import pytest

from tinynorm.cli import main
from tinynorm.models import MLP
from tinynorm import checkpoint
from tinynorm.train import train


def test_mlp_with_bn_reaches_95_percent_on_digits():
    result = train(model="mlp", norm="bn", epochs=8, quiet=True)
    assert result["test_accuracy"] >= 0.95


def test_cli_trains_saves_and_reloads(tmp_path, capsys):
    path = tmp_path / "mlp.npz"
    assert main(["train", "--epochs", "1", "--batch-size", "128", "--save", str(path)]) == 0
    out = capsys.readouterr().out
    assert "epoch   1/1" in out and "test accuracy" in out and "saved a checkpoint" in out
    model = MLP(64)
    model.load_state_dict(checkpoint.load(path).model_state)
    assert set(checkpoint.load(path).model_state) == set(model.state_dict())


def test_cli_cnn_one_epoch(capsys):
    assert main(["train", "--model", "cnn", "--epochs", "1", "--optimizer", "sgd", "--lr", "0.05"]) == 0
    acc = float(capsys.readouterr().out.split("test accuracy")[1].split()[0])
    assert acc > 0.5


def test_cli_errors_are_clear(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--norm", "nope"])
    with pytest.raises(SystemExit):
        main(["train", "--epochs", "0"])
    assert "argument --epochs: must be >= 1" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--epochs", "1"]) == 2
    assert "train-images" in capsys.readouterr().err
    assert main(["train", "--batch-size", "5000", "--epochs", "1"]) == 2


def test_console_entry_point_module_runs():
    proc = subprocess.run([sys.executable, "-m", "tinynorm.cli", "train", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--batch-size" in proc.stdout


def test_training_is_deterministic_for_a_seed():
    a = train(model="mlp", epochs=1, seed=3, quiet=True)["model"].state_dict()
    b = train(model="mlp", epochs=1, seed=3, quiet=True)["model"].state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_cli_announces_compilation_only_without_cache(monkeypatch, capsys):
    import tinynorm.kernels as kernels
    monkeypatch.setattr(kernels, "compiled_cache_present", lambda: False)
    assert main(["train", "--epochs", "1", "--batch-size", "256"]) == 0
    assert capsys.readouterr().out.startswith("compiling kernels, first run only")
    monkeypatch.setattr(kernels, "compiled_cache_present", lambda: True)
    assert main(["train", "--epochs", "1", "--batch-size", "256"]) == 0
    assert "compiling" not in capsys.readouterr().out
