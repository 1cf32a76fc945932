"""Every --norm trains the models it applies to; the rest are refused with a reason."""
import numpy as np
import pytest

from tinynorm import nn
from tinynorm.cli import main
from tinynorm.models import CNN_NORMS, MLP_NORMS, NORMS, NormOptions, build_model
from tinynorm.train import train


@pytest.mark.parametrize("norm", ["bn", "gn", "ln", "brn", "frn", "cbn", "cmbn", "wn"])
def test_cnn_reaches_96_percent_with_default_settings(norm):
    assert train(model="cnn", norm=norm, quiet=True)["test_accuracy"] >= 0.96


def test_bn_lstm_reads_rows_and_reaches_95_percent():
    assert train(model="lstm", norm="bn", quiet=True)["test_accuracy"] >= 0.95


@pytest.mark.parametrize("model, norm", [("mlp", n) for n in MLP_NORMS]
                         + [("cnn", n) for n in ("in", "lrn", "rms", "none")]
                         + [("lstm", "none")])
def test_every_other_pairing_trains_one_epoch(model, norm):
    res = train(model=model, norm=norm, epochs=2, quiet=True)
    assert res["test_accuracy"] > 0.3, res


def test_the_layer_each_norm_puts_in_the_cnn():
    expect = {"bn": nn.BatchNorm2d, "brn": nn.BatchRenorm2d, "cmbn": nn.CrossMiniBatchNorm,
              "cbn": nn.CrossIterationBatchNorm, "gn": nn.GroupNorm, "ln": nn.LayerNorm,
              "in": nn.InstanceNorm2d, "frn": nn.FilterResponseNorm2d, "rms": nn.RMSNorm,
              "lrn": nn.LocalResponseNorm}
    assert set(expect) | {"wn", "none"} == set(CNN_NORMS) == set(NORMS)
    for norm in CNN_NORMS:
        kinds = [type(m) for m in build_model("cnn", (1, 8, 8), 10, norm).modules()]
        others = {cls for n, cls in expect.items() if n != norm}
        assert not others & set(kinds), (norm, others & set(kinds))
        if norm in expect:
            assert kinds.count(expect[norm]) == 2, norm
        elif norm == "wn":
            net = build_model("cnn", (1, 8, 8), 10, norm)
            assert "features.0.weight_g" in net.state_dict()


def test_cmbn_accumulates_subdivisions_before_each_step():
    model = build_model("cnn", (1, 8, 8), 10, "cmbn", NormOptions(subdivisions=3))
    layer = next(m for m in model.modules() if isinstance(m, nn.CrossMiniBatchNorm))
    assert layer.subdivisions == 3
    res = train(model="cnn", norm="cmbn", epochs=1, quiet=True, subdivisions=2)
    assert res["test_accuracy"] > 0.3


def test_gradient_accumulation_matches_one_full_batch_for_per_sample_norms():
    one = train(model="mlp", norm="ln", epochs=1, quiet=True, optimizer="sgd", lr=0.05)
    four = train(model="mlp", norm="ln", epochs=1, quiet=True, optimizer="sgd", lr=0.05,
                 subdivisions=4)
    for (k, a), (_, b) in zip(one["model"].state_dict().items(), four["model"].state_dict().items()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("argv, message", [
    (["--norm", "in"], "--norm in does not apply to --model mlp"),
    (["--norm", "lrn"], "--norm lrn does not apply to --model mlp"),
    (["--model", "lstm", "--norm", "gn"], "--norm gn does not apply to --model lstm"),
    (["--model", "cnn", "--norm", "gn", "--groups", "5"], "--groups 5 does not divide the 32"),
    (["--subdivisions", "100"], "subdivisions must be between 1 and the batch size 64"),
    (["--norm", "cbn", "--workers", "2"], "--norm cbn keeps per-process statistics"),
])
def test_cli_refuses_pairings_that_make_no_sense(argv, message, capsys):
    assert main(["train", "--epochs", "1"] + argv) == 2
    assert message in capsys.readouterr().err


def test_cli_flags_reach_the_layers(monkeypatch):
    import tinynorm.train
    seen = []
    monkeypatch.setattr(tinynorm.train, "train", lambda **kw: seen.append(kw))
    assert main(["train", "--model", "cnn", "--norm", "cbn", "--window", "2", "--burn-in", "3",
                 "--subdivisions", "2"]) == 0
    assert main(["train", "--model", "cnn", "--norm", "gn", "--groups", "4"]) == 0
    assert main(["train", "--norm", "brn", "--renorm-warmup", "1", "--renorm-rmax-steps", "5",
                 "--renorm-dmax-steps", "6"]) == 0
    assert main(["train", "--model", "lstm", "--pixels"]) == 0
    cbn_opts, gn_opts, brn_opts = (s["options"] for s in seen[:3])
    assert (cbn_opts.window, cbn_opts.burn_in, gn_opts.groups, brn_opts.renorm_schedule) == \
        (2, 3, 4, (1, 5, 6))
    assert seen[0]["subdivisions"] == 2 and seen[3]["pixels"] is True
    model = build_model("cnn", (1, 8, 8), 10, "cbn", cbn_opts)
    cbn = next(m for m in model.modules() if isinstance(m, nn.CrossIterationBatchNorm))
    assert (cbn.window, cbn.burn_in) == (2, 3)
    gn = next(m for m in build_model("cnn", (1, 8, 8), 10, "gn", gn_opts).modules()
              if isinstance(m, nn.GroupNorm))
    assert gn.num_groups == 4
    brn = next(m for m in build_model("mlp", (1, 8, 8), 10, "brn", brn_opts).modules()
               if isinstance(m, nn.BatchRenorm1d))
    assert brn.renorm_limits(1) == (1.0, 0.0) and brn.renorm_limits(6) == (3.0, 5.0)


@pytest.mark.parametrize("argv, message", [
    (["--norm", "ln", "--groups", "4"], "--groups is read only with --norm gn"),
    (["--norm", "gn", "--groups", "8", "--window", "4"], "--window is read only with --norm cbn"),
    (["--norm", "bn", "--burn-in", "10"], "--burn-in is read only with --norm cbn"),
    (["--norm", "bn", "--renorm-warmup", "3"], "--renorm-warmup is read only with --norm brn"),
    (["--norm", "cbn", "--renorm-rmax-steps", "3"], "--renorm-rmax-steps is read only with --norm brn"),
    (["--norm", "gn", "--renorm-dmax-steps", "3"], "--renorm-dmax-steps is read only with --norm brn"),
    (["--norm", "ln", "--bn-stats", "population"], "--bn-stats is read only with --norm bn, cbn or cmbn"),
    (["--norm", "brn", "--bn-stats", "running"], "--bn-stats is read only with --norm bn, cbn or cmbn"),
    (["--timeout", "5"], "--timeout is read only with --workers N > 1"),
])
def test_cli_refuses_a_flag_the_run_would_ignore(argv, message, capsys, monkeypatch):
    import tinynorm.train
    monkeypatch.setattr(tinynorm.train, "train", lambda **kw: pytest.fail("train() was reached"))
    assert main(["train", "--epochs", "1"] + argv) == 2
    assert message in capsys.readouterr().err


def test_lstm_pixels_mode_reads_one_pixel_per_step_and_learns():
    from tinynorm.sequence_models import image_to_sequence
    import tinynorm as tn
    x = np.arange(2 * 1 * 8 * 8, dtype=np.float32).reshape(2, 1, 8, 8)
    np.testing.assert_array_equal(image_to_sequence(tn.tensor(x), pixels=True).data,
                                  x.reshape(2, 64, 1))
    res = train(model="lstm", norm="bn", epochs=1, batch_size=256, quiet=True, pixels=True)
    rnn = res["model"].rnn
    assert (rnn.input_size, rnn.max_length) == (1, 64)
    assert res["history"][0][1] > 0.15, res["history"]
