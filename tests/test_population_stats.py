"""update_bn: BN's running statistics recomputed as population averages (BN paper, Algorithm 2)."""
import numpy as np

import tinynorm as tn
from tinynorm import nn
from tinynorm.nn.utils import update_bn


def batches(rng, k=4, n=5, c=3):
    return [rng.standard_normal((n, c)).astype(np.float64) * (1 + i) + i for i in range(k)]


def test_update_bn_gives_the_average_of_batch_means_and_unbiased_variances():
    rng = np.random.default_rng(0)
    bn = nn.BatchNorm1d(3, momentum=0.3, dtype=np.float64)
    data = batches(rng)
    bn.eval()
    update_bn(data, bn)
    means = [b.mean(axis=0) for b in data]
    variances = [b.var(axis=0, ddof=1) for b in data]
    np.testing.assert_allclose(bn.running_mean.data, np.mean(means, axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, np.mean(variances, axis=0), rtol=1e-12)
    assert bn.momentum == 0.3 and not bn.training and int(bn.num_batches_tracked.data) == 4


def test_update_bn_reads_loader_tuples_inside_models_and_records_no_tape():
    rng = np.random.default_rng(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU())
    data = [(tn.tensor(b.astype(np.float32)), np.zeros(5)) for b in batches(rng)]
    update_bn(data, model)
    pre = [b.data.astype(np.float64) @ model[0].weight.data.T + model[0].bias.data for b, _ in data]
    np.testing.assert_allclose(model[1].running_mean.data, np.mean([p.mean(0) for p in pre], axis=0),
                               rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in model.parameters()) and model.training


def test_update_bn_per_time_step_for_bn_lstm():
    rng = np.random.default_rng(2)
    m = nn.BNLSTM(2, 3, max_length=3, momentum=0.1, dtype=np.float64)
    data = [rng.standard_normal((3, 4, 2)) for _ in range(3)]
    update_bn(data, m)
    w = m.weight_ih.data
    for t in range(3):
        want = np.mean([(x[t] @ w.T).mean(axis=0) for x in data], axis=0)
        np.testing.assert_allclose(m.bn_ih_running_mean.data[t], want, rtol=1e-10)
    assert m.momentum == 0.1


def test_update_bn_leaves_models_without_running_stats_alone():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    update_bn([np.ones((2, 3), np.float32)], model)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
