"""SyncBatchNorm: equal to BatchNorm on the concatenated batch (shared-memory ranks), one
process, convert_sync_batchnorm, errors.

The reference (tests/oracles/sync_batch_norm.py) is plain BN on the whole batch, as
docs/norms.md#syncbatchnorm defines it; the same check runs under MPI in test_distributed.py.
"""
import numpy as np
import pytest

import tinynorm as tn
import tinynorm.distributed as dist
from tinynorm import nn

import distributed_workers as W
from oracles.sync_batch_norm import check_sync_bn


@pytest.mark.parametrize("world", [2, 3])
def test_sync_batch_norm_equals_batch_norm_on_the_whole_batch(world):
    check_sync_bn(dist.launch(W.sync_bn_cases, world, timeout=120))


def test_sync_batch_norm_in_one_process_is_batch_norm():
    bn = nn.SyncBatchNorm(3)
    x = np.random.default_rng(0).standard_normal((4, 3, 2)).astype(np.float32)
    ref = nn.BatchNorm1d(3)
    np.testing.assert_array_equal(bn(tn.tensor(x)).data, ref(tn.tensor(x)).data)


def test_convert_sync_batchnorm_keeps_parameters_and_names_layers():
    model = W.TinyCNN()
    model.bn.running_mean.data[...] = 0.5
    old_weight = model.bn.weight
    conv = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(conv.bn, nn.SyncBatchNorm) and isinstance(conv.bn1, nn.SyncBatchNorm)
    assert conv.bn.sync_name == "bn" and conv.bn1.sync_name == "bn1"
    assert conv.bn.weight is old_weight
    assert list(conv.state_dict()) == list(W.TinyCNN().state_dict())
    np.testing.assert_array_equal(conv.bn.running_mean.data, 0.5)
    assert isinstance(nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm2d(4)), nn.SyncBatchNorm)


def test_sync_batch_norm_rejects_bad_input():
    bn = nn.SyncBatchNorm(3)
    with pytest.raises(ValueError, match="at least 2D"):
        bn(tn.tensor(np.ones(3, np.float32)))
    with pytest.raises(ValueError, match="4 channels"):
        bn(tn.tensor(np.ones((2, 4), np.float32)))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(tn.tensor(np.ones((1, 3), np.float32)))
