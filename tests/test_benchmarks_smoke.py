"""benchmarks/bench_train.py and profile_train.py run end to end, tiny (with torch where it is
installed, without it otherwise), so that they cannot break unnoticed; no time is asserted."""
import math
import os

import numpy as np
import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.fixture
def benchmarks(monkeypatch):
    """The benchmark modules, with the pause between timings removed and the thread counts
    they pin put back afterwards."""
    import numba
    monkeypatch.syspath_prepend(BENCHMARKS)
    import bench_train
    import common
    import profile_train
    monkeypatch.setattr(bench_train, "settle", lambda seconds=0: None)
    torch = common.torch_or_none()
    threads = numba.get_num_threads(), torch.get_num_threads() if torch is not None else None
    yield bench_train, profile_train, torch
    numba.set_num_threads(threads[0])
    if torch is not None:
        torch.set_num_threads(threads[1])


def test_bench_train_every_row_runs(benchmarks):
    bench_train, _, torch = benchmarks
    table = bench_train.main(["--quick", "--threads", "1"])
    assert [r[0] for r in table] == list(bench_train.ROWS)
    for row, _, rounds, ours, theirs, speedup, acc, torch_acc in table:
        assert rounds == 1 and math.isfinite(float(ours)) and float(ours) > 0
        assert (theirs == "-") == (torch is None) and (speedup == "-") == (torch is None)
        if row in bench_train.DIGITS_ROWS:
            assert 0 <= float(acc) <= 1


def test_bench_train_torch_twins_start_from_the_same_weights(benchmarks):
    bench_train, _, torch = benchmarks
    if torch is None:
        pytest.skip("torch is not installed")
    import tinynorm as tn
    args = bench_train.parse().parse_args(["--resnet-width", "8"])
    rng = np.random.default_rng(0)
    for row in bench_train.ROWS:
        if row == "bnlstm":  # its twin is a plain LSTM: same weights, other model
            continue
        shape = bench_train.RANDOM_ROWS[row][0] if row in bench_train.RANDOM_ROWS else (1, 8, 8)
        x = rng.standard_normal((4,) + shape).astype(np.float32)
        ours, twin = bench_train.make_pair(torch, row, shape, args)
        np.testing.assert_allclose(ours.net(tn.Tensor(x)).data,
                                   twin.net(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=row)


def test_profile_train_runs(benchmarks, capsys):
    _, profile_train, _ = benchmarks
    profile_train.main(["--quick", "--threads", "1"])
    out = capsys.readouterr().out
    for text in ("=== cnn", "=== mlp", "GEMM", "tape, Function.apply, Tensor", "cProfile top"):
        assert text in out
