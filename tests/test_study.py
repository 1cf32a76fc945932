"""tinynorm study: verdicts computed from records (both outcomes), the JSON interface, bitwise
reproducibility across --jobs, the CLI, and a study without matplotlib."""
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tinynorm.study import EXPERIMENTS, Scale, run_study
from tinynorm.study.stats import beyond_spread, differ, first_epoch_reaching, mean_std

SCALE = Scale(seeds=(0, 1, 2))
SEEDS = (0, 1, 2)


def rec(acc, seed, curve=None, **params):
    return {"params": params, "seed": seed, "test_accuracy": acc,
            "curve": curve if curve is not None else [{"step": 10, "epoch": 1, "train_loss": 1.0,
                                                       "test_accuracy": acc}]}


def jitter(seed):
    return (seed - 1) * 0.003


def holds(verdicts, phrase):
    matches = [v["holds"] for v in verdicts if phrase in v["claim"]]
    assert matches, f"no verdict mentions {phrase!r}: {[v['claim'] for v in verdicts]}"
    return all(matches)


def assert_claims_both_ways(exp, holding, failing, *claims):
    """Every claim holds on the records ``holding`` and none holds on ``failing``."""
    v = exp.verdicts(holding, SCALE)
    assert all(holds(v, c) for c in claims)
    v = exp.verdicts(failing, SCALE)
    assert not any(holds(v, c) for c in claims)


# ---- the statistics ------------------------------------------------------------------------

def test_beyond_spread_needs_the_gap_to_clear_both_spreads_and_the_resolution():
    assert beyond_spread([0.9, 0.91, 0.92], [0.80, 0.81, 0.82])
    assert not beyond_spread([0.9, 0.95, 0.85], [0.87, 0.92, 0.82])
    assert not beyond_spread([0.80], [0.90])
    assert beyond_spread([0.5], [0.5 - 1 / 360], resolution=1 / 360)
    assert not beyond_spread([0.5], [0.5 - 0.5 / 360], resolution=1 / 360)
    assert differ([0.2], [0.9]) and not differ([0.5, 0.6], [0.55, 0.5])
    assert mean_std([1.0]) == (1.0, 0.0)
    assert np.isclose(mean_std([1.0, 3.0])[1], np.sqrt(2))


def test_first_epoch_reaching_reads_the_epoch_ends():
    curve = [{"step": 5, "epoch": 1, "train_loss": 1, "test_accuracy": 0.96},
             {"step": 10, "epoch": 1, "train_loss": 1, "test_accuracy": 0.90},
             {"step": 20, "epoch": 2, "train_loss": 1, "test_accuracy": 0.97}]
    assert first_epoch_reaching(curve, 0.95) == 2
    assert first_epoch_reaching(curve, 0.99) is None


# ---- every verdict is computed: the same claim holds on one set of records, fails on another --

def batch_size_records(bn_small):
    out = []
    for model in ("mlp", "cnn"):
        for norm in ("bn", "gn", "ln", "brn"):
            for b in (32, 2):
                for s in SEEDS:
                    acc = 0.95 + jitter(s)
                    if b == 2 and norm == "bn":
                        acc = bn_small + jitter(s)
                    out.append(rec(acc, s, model=model, norm=norm, batch_size=b))
    return out


def test_batch_size_verdict_both_ways():
    v = EXPERIMENTS["batch-size"].verdicts(batch_size_records(0.80), SCALE)
    assert holds(v, "mlp: BN's test error rises") and holds(v, "cnn: BN's test error rises")
    assert holds(v, "BRN's error rises")
    v = EXPERIMENTS["batch-size"].verdicts(batch_size_records(0.95), SCALE)
    assert not holds(v, "mlp: BN's test error rises") and not holds(v, "BRN's error rises")
    t = EXPERIMENTS["batch-size"].table(batch_size_records(0.80), SCALE)
    assert t.header == ["model", "norm", "err% b=32", "err% b=2"]
    assert ["mlp", "bn", "5.0 ± 0.3", "20.0 ± 0.3"] in t.rows


def sync_records(sync_acc, per_device_acc, loss_gap=0.0):
    out = []
    for model in ("mlp", "cnn"):
        for mode, acc in (("per-device", per_device_acc), ("sync", sync_acc), ("single", 0.95)):
            for s in SEEDS:
                loss = 1.0 + (loss_gap if mode == "sync" else 0.0)
                curve = [{"step": 25, "epoch": 1, "train_loss": loss, "test_accuracy": acc},
                         {"step": 50, "epoch": 1, "train_loss": loss / 2, "test_accuracy": acc}]
                devices = 1 if mode == "single" else 2
                out.append(rec(acc + jitter(s), s, curve, model=model, norm="bn",
                               batch_size=4 // devices, devices=devices, mode=mode))
    return out


def test_sync_verdicts_both_ways():
    exp = EXPERIMENTS["sync"]
    assert_claims_both_ways(exp, sync_records(0.95, 0.85), sync_records(0.90, 0.95),
                            "sync equals single", "both beat per-device")
    v = exp.verdicts(sync_records(0.95, 0.85, loss_gap=0.01), SCALE)
    assert not holds(v, "sync equals single"), "a different training loss is not the same math"


def non_iid_records(bn_pairs, brn_pairs):
    out = []
    for model in ("mlp", "cnn"):
        for norm, pairs in (("bn", bn_pairs), ("brn", brn_pairs), ("gn", 0.95)):
            for batches, acc in (("iid", 0.95), ("non-iid", pairs)):
                for s in SEEDS:
                    out.append(rec(acc + jitter(s), s, model=model, norm=norm, batch_size=32,
                                   batches=batches))
    return out


def test_non_iid_verdicts_both_ways():
    assert_claims_both_ways(EXPERIMENTS["non-iid"], non_iid_records(0.85, 0.93),
                            non_iid_records(0.95, 0.95), "BN loses accuracy", "BRN loses less")


def rnn_curve(reach_at, final):
    return [{"step": s, "epoch": s // 20, "train_loss": 1.0,
             "test_accuracy": final if s >= reach_at else 0.1} for s in range(20, 201, 20)]


def rnn_records(bn_reach, ln_long):
    out = []
    for norm, reach, final in (("none", 200, 0.6), ("bn", bn_reach, 0.7), ("lnlstm", 60, 0.7)):
        for s in SEEDS:
            curve = rnn_curve(reach, final + jitter(s))
            params = {"model": "lstm", "norm": norm, "order": "in-order", "batch_size": 64}
            if norm == "bn":
                params["stats"] = "population"
            out.append(rec(final + jitter(s), s, curve, length=64, **params))
            long = ln_long if norm == "lnlstm" else 0.2
            out.append(rec(long + jitter(s), s, curve, length=128, **params))
            if norm == "bn":
                out.append(rec(0.3 + jitter(s), s, curve, length=64, **dict(params, stats="running")))
    return out


def test_rnn_verdicts_both_ways():
    exp = EXPERIMENTS["rnn"]
    v = exp.verdicts(rnn_records(bn_reach=60, ln_long=0.7), SCALE)
    assert holds(v, "BN-LSTM reaches LSTM's final accuracy")
    assert holds(v, "LN-LSTM keeps its accuracy") and not holds(v, "BN-LSTM keeps its accuracy")
    assert holds(v, "running averages")
    v = exp.verdicts(rnn_records(bn_reach=200, ln_long=0.3), SCALE)
    assert not holds(v, "BN-LSTM reaches LSTM's final accuracy")
    assert not holds(v, "LN-LSTM keeps its accuracy")


def lr_records(none_fails_at_large):
    out = []
    for model, norm, lr, s in itertools.product(("mlp", "cnn"), ("bn", "none"), (0.1, 3.0), SEEDS):
        bad = norm == "none" and lr == 3.0 and none_fails_at_large
        reach = 2 if norm == "bn" else 5
        curve = [{"step": 10 * e, "epoch": e,
                  "train_loss": None if bad and e > 1 else 1.0 / e,
                  "test_accuracy": 0.1 if bad else (0.97 if e >= reach else 0.9)}
                 for e in range(1, 7)]
        out.append(rec(curve[-1]["test_accuracy"], s, curve, model=model, norm=norm,
                       lr=lr, batch_size=64))
    return out


def test_lr_verdicts_both_ways():
    exp = EXPERIMENTS["lr"]
    v = exp.verdicts(lr_records(True), SCALE)
    assert holds(v, "BN trains well") and holds(v, "reaches 95% in fewer epochs")
    v = exp.verdicts(lr_records(False), SCALE)
    assert not holds(v, "BN trains well")
    t = exp.table(lr_records(True), SCALE)
    assert ["mlp", "none", "3", "10.0 ± 0.0", "not in 6", "3/3"] in t.rows


def placement_records(after_gain):
    out = []
    for model in ("mlp", "cnn"):
        for lr in (1e-3, 1e-2):
            for placement, acc in (("before", 0.95), ("after", 0.95 + after_gain)):
                for s in SEEDS:
                    out.append(rec(acc + jitter(s), s, model=model, norm="bn", placement=placement,
                                   lr=lr, batch_size=64))
    return out


def test_placement_verdict_is_whichever_the_numbers_say():
    exp = EXPERIMENTS["placement"]
    v = exp.verdicts(placement_records(0.02), SCALE)
    assert holds(v, "BN after the ReLU beats") and not holds(v, "BN before the ReLU beats")
    v = exp.verdicts(placement_records(-0.02), SCALE)
    assert holds(v, "BN before the ReLU beats") and not holds(v, "BN after the ReLU beats")
    v = exp.verdicts(placement_records(0.0), SCALE)
    assert not holds(v, "BN after the ReLU beats") and not holds(v, "BN before the ReLU beats")


def train_eval_records(bn_batch_small):
    out = []
    for model in ("mlp", "cnn"):
        for norm in ("bn", "brn"):
            for b in (32, 2):
                for s in SEEDS:
                    running = 0.95
                    batch = bn_batch_small if (norm == "bn" and b == 2) else 0.95
                    out.append(rec(running + jitter(s), s, model=model, norm=norm, batch_size=b,
                                   stats="running"))
                    out.append(rec(batch + jitter(s), s, model=model, norm=norm, batch_size=b,
                                   stats="batch"))
    return out


def test_train_eval_verdicts_both_ways():
    exp = EXPERIMENTS["train-eval"]
    v = exp.verdicts(train_eval_records(0.70), SCALE)
    assert holds(v, "gap between batch and running statistics is wider") and holds(v, "narrower")
    v = exp.verdicts(train_eval_records(0.95), SCALE)
    assert not holds(v, "wider") and not holds(v, "narrower")


# ---- real runs: the CLI, the JSON interface, bitwise reproducibility, no matplotlib ------------

RUN_KEYS = {"params", "seed", "test_accuracy", "curve"}
POINT_KEYS = {"step", "epoch", "train_loss", "test_accuracy"}
PARAM_NAMES = {"model", "norm", "batch_size", "lr", "devices", "mode", "batches", "placement",
               "stats", "order", "length"}


@pytest.fixture(scope="module")
def cli_study(tmp_path_factory):
    """``tinynorm study --quick sync placement --jobs 2`` through the real command line."""
    out = tmp_path_factory.mktemp("study")
    proc = subprocess.run([sys.executable, "-m", "tinynorm.cli", "study", "--quick", "sync",
                           "placement", "--jobs", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_cli_study_writes_json_plots_tables_and_summary(cli_study):
    out, proc = cli_study
    for name in ("sync", "placement"):
        assert (out / f"{name}.json").exists()
        png = out / f"{name}.png"
        assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"== {name} ==" in proc.stdout
    assert "HOLDS" in proc.stdout or "DOES NOT HOLD" in proc.stdout
    assert "runs" in proc.stderr and "ETA" in proc.stderr
    summary = (out / "summary.md").read_text()
    assert "## sync" in summary and "## placement" in summary and "![sync](sync.png)" in summary
    assert "± " in summary


def test_study_json_keeps_exactly_the_interface_keys(cli_study):
    out, _ = cli_study
    for name in ("sync", "placement"):
        doc = json.loads((out / f"{name}.json").read_text())
        assert set(doc) == {"experiment", "claim", "runs", "verdicts"}
        assert doc["experiment"] == name and doc["claim"] == EXPERIMENTS[name].CLAIM
        assert doc["runs"] and doc["verdicts"]
        for run in doc["runs"]:
            assert set(run) == RUN_KEYS
            assert set(run["params"]) <= PARAM_NAMES
            assert isinstance(run["seed"], int) and 0 <= run["test_accuracy"] <= 1
            assert run["curve"]
            for p in run["curve"]:
                assert set(p) == POINT_KEYS and isinstance(p["step"], int)
                assert isinstance(p["epoch"], int) and 0 <= p["test_accuracy"] <= 1
        for v in doc["verdicts"]:
            assert set(v) == {"claim", "holds", "evidence"} and isinstance(v["holds"], bool)
    sync = json.loads((out / "sync.json").read_text())
    modes = {r["params"]["mode"] for r in sync["runs"]}
    assert modes == {"per-device", "sync", "single"}


def test_same_seeds_give_the_same_json_bit_for_bit_with_one_job(cli_study, tmp_path):
    out, _ = cli_study
    run_study(["sync", "placement"], seeds=1, quick=True, out=str(tmp_path), jobs=1,
              stream=open(os.devnull, "w"), progress_stream=open(os.devnull, "w"))
    for name in ("sync", "placement"):
        assert (tmp_path / f"{name}.json").read_bytes() == (out / f"{name}.json").read_bytes(), name


def test_study_runs_without_matplotlib(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    run_study(["lr"], seeds=1, quick=True, out=str(tmp_path), jobs=2,
              progress_stream=open(os.devnull, "w"))
    printed = capsys.readouterr().out
    assert "pip install 'tinynorm[plot]'" in printed
    assert (tmp_path / "lr.json").exists() and (tmp_path / "summary.md").exists()
    assert not (tmp_path / "lr.png").exists()
    assert "![lr]" not in (tmp_path / "summary.md").read_text()


def test_study_list_and_bad_arguments(capsys):
    from tinynorm.cli import main
    assert main(["study", "--list"]) == 0
    listed = capsys.readouterr().out
    for name, exp in EXPERIMENTS.items():
        assert name in listed and exp.CLAIM[:40] in listed
    assert main(["study", "no-such-experiment"]) == 2
    assert "unknown experiment(s) no-such-experiment" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["study", "--seeds", "0", "lr"])
    assert "argument --seeds: must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["study", "--jobs", "0", "lr"])
    assert "argument --jobs: must be >= 1, got 0" in capsys.readouterr().err
