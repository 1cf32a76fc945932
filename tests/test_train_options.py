"""The training options the study builds on: learning curves, BN's placement, non-i.i.d. batches,
per-device BN across workers, permuted pixel sequences, population statistics, the LN-LSTM."""
import numpy as np
import pytest

from tinynorm import nn
from tinynorm.cli import main
from tinynorm.models import NormOptions, build_model
from tinynorm.train import train


def weights(result):
    return {k: np.array(v) for k, v in result["model"].state_dict().items()}


def test_curve_points_do_not_change_the_training():
    kw = dict(model="cnn", norm="bn", epochs=2, batch_size=64, quiet=True)
    plain, curved = train(**kw), train(**kw, curve_every=5)
    for k, a in weights(plain).items():
        np.testing.assert_array_equal(a, weights(curved)[k], err_msg=k)
    assert plain["history"] == curved["history"]
    curve = curved["curve"]
    steps = [p["step"] for p in curve]
    assert steps == sorted(set(steps)) and steps[-1] == 2 * (1437 // 64) and 5 in steps and 22 in steps
    assert [p["epoch"] for p in curve if p["step"] in (20, 22, 25)] == [1, 1, 2]
    assert curve[-1]["test_accuracy"] == curved["test_accuracy"]
    loss_per_epoch = [np.mean([p["train_loss"] for p in curve if p["epoch"] == e]) for e in (1, 2)]
    assert loss_per_epoch[1] < loss_per_epoch[0]


def test_curve_every_zero_records_epoch_ends_and_divergence_stops_the_run():
    with np.errstate(all="ignore"):
        res = train(model="mlp", norm="none", epochs=3, quiet=True, optimizer="sgd", lr=1e10,
                    momentum=0.0, curve_every=0, stop_on_nonfinite=True)
    assert res["diverged"] and len(res["curve"]) < 3 and not np.isfinite(res["curve"][-1]["train_loss"])
    ok = train(model="mlp", norm="bn", epochs=2, quiet=True, curve_every=0, stop_on_nonfinite=True)
    assert not ok["diverged"] and [p["step"] for p in ok["curve"]] == [22, 44]


def test_placement_moves_bn_across_the_relu_in_the_cnn():
    def order(net):
        return [type(m).__name__ for m in net.features if isinstance(m, (nn.ReLU, nn.BatchNorm2d))]
    assert order(build_model("cnn", (1, 8, 8), 10, "bn"))[:2] == ["BatchNorm2d", "ReLU"]
    after = build_model("cnn", (1, 8, 8), 10, "bn", NormOptions(placement="after"))
    assert order(after)[:2] == ["ReLU", "BatchNorm2d"]


@pytest.mark.parametrize("placement", [None, "before", "after"])
def test_placement_in_the_mlp_matches_a_plain_forward(placement):
    import tinynorm as tn
    rng = np.random.default_rng(0)
    net = build_model("mlp", (1, 8, 8), 10, "bn", NormOptions(placement=placement))
    bn = net.norm
    bn.running_mean.data[...] = rng.standard_normal(128)
    bn.running_var.data[...] = rng.uniform(0.5, 2, 128)
    bn.weight.data[...] = rng.uniform(0.5, 2, 128)
    bn.bias.data[...] = rng.standard_normal(128)
    x = rng.random((4, 1, 8, 8)).astype(np.float32)
    net.eval()
    with tn.no_grad():
        got = net(tn.tensor(x)).data
    pre = x.reshape(4, -1).astype(np.float64) @ net.layer1.weight.data.T
    norm = lambda h: (h - bn.running_mean.data) / np.sqrt(bn.running_var.data + bn.eps) \
        * bn.weight.data + bn.bias.data  # noqa: E731
    hidden = np.maximum(norm(pre), 0) if placement == "before" else norm(np.maximum(pre, 0))
    ref = hidden @ net.layer2.weight.data.T + net.layer2.bias.data
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_placement_is_refused_where_it_means_nothing(capsys):
    with pytest.raises(ValueError, match="--placement does not apply to --norm frn"):
        build_model("cnn", (1, 8, 8), 10, "frn", NormOptions(placement="after"))
    with pytest.raises(ValueError, match="placement must be 'before' or 'after'"):
        build_model("mlp", (1, 8, 8), 10, "bn", NormOptions(placement="inside"))
    assert main(["train", "--model", "lstm", "--placement", "before", "--epochs", "1"]) == 2
    assert "--placement applies to the MLP and the CNN" in capsys.readouterr().err
    assert main(["train", "--model", "cnn", "--permuted", "--epochs", "1"]) == 2
    assert "--permuted reorders the pixels" in capsys.readouterr().err


def test_non_iid_batches_train_and_differ_from_iid():
    iid = train(model="mlp", norm="bn", epochs=1, batch_size=32, quiet=True)
    pairs = train(model="mlp", norm="bn", epochs=1, batch_size=32, quiet=True, batches="non-iid")
    assert pairs["history"] != iid["history"] and pairs["test_accuracy"] > 0.3
    with pytest.raises(ValueError, match="even integer"):
        train(model="mlp", epochs=1, batch_size=31, quiet=True, batches="non-iid")
    with pytest.raises(ValueError, match="batches must be 'iid' or 'non-iid'"):
        train(model="mlp", epochs=1, quiet=True, batches="sorted")


def test_per_device_bn_across_workers_differs_from_sync_bn():
    # the first 10 steps: later, rounding differences grow along the trajectory
    kw = dict(model="mlp", norm="bn", epochs=1, batch_size=8, quiet=True, optimizer="sgd", lr=0.01,
              curve_every=10)
    single = train(**kw)
    sync, per_device = train(**kw, workers=2), train(**kw, workers=2, sync_bn=False)
    first = single["curve"][0]["train_loss"]
    assert abs(sync["curve"][0]["train_loss"] - first) < 1e-5 * first
    assert abs(per_device["curve"][0]["train_loss"] - first) > 1e-3 * first
    assert per_device["curve"][-1]["test_accuracy"] == per_device["test_accuracy"]


def test_lstm_with_layer_norm_and_permuted_pixels_trains_from_the_cli(capsys):
    assert main(["train", "--model", "lstm", "--norm", "ln", "--permuted", "--epochs", "1",
                 "--batch-size", "256"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    net = build_model("lstm", (1, 8, 8), 10, "ln", permuted=True)
    assert isinstance(net.rnn, nn.LNLSTM) and net.pixels and net.permuted


def test_population_statistics_measure_bn_lstm_with_the_bn_papers_inference_rule():
    kw = dict(model="lstm", norm="bn", epochs=1, batch_size=128, quiet=True, lr=3e-3)
    running = train(**kw)
    population = train(**kw, bn_stats="population")
    for k, a in weights(running).items():
        np.testing.assert_array_equal(a, weights(population)[k], err_msg=k)
    from tinynorm.train import evaluate, load_dataset, population_copy
    (xtr, _), (xte, yte) = load_dataset()
    probe = population_copy(population["model"], xtr, 128)
    assert population["test_accuracy"] == evaluate(probe, xte, yte)
    assert running["test_accuracy"] == evaluate(population["model"], xte, yte)
    with pytest.raises(ValueError, match="bn_stats must be 'running' or 'population'"):
        train(model="mlp", epochs=1, quiet=True, bn_stats="ema")
