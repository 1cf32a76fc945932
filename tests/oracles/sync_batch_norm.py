"""SyncBatchNorm's reference (docs/norms.md#syncbatchnorm): plain BatchNorm in one process on the
whole batch, and the check of every rank's shard against it."""
import numpy as np

import tinynorm as tn
from tinynorm import nn

import distributed_workers as W


def reference_bn(dtype, sample, shards):
    """One process, plain BN, the whole batch, the same two steps and the eval pass."""
    bn = nn.BatchNorm1d(sample[0], momentum=0.3, dtype=np.dtype(dtype).type) if len(sample) == 1 \
        else nn.BatchNorm2d(sample[0], momentum=0.3, dtype=np.dtype(dtype).type)
    case = W.SHARD_CASES[len(shards)].index(shards)
    res = {}
    for step in range(2):
        x, dy, w, b = W.global_batch(shards, sample, dtype, seed=100 * case + step)
        bn.weight.data[...] = w
        bn.bias.data[...] = b
        bn.zero_grad()
        xt = tn.tensor(x, requires_grad=True)
        y = bn(xt)
        y.backward(dy)
        res[step] = dict(y=y.data, dx=xt.grad.data, dw=bn.weight.grad.data, db=bn.bias.grad.data)
    bn.eval()
    res["eval_y"] = bn(tn.tensor(x)).data
    res["running_mean"], res["running_var"] = bn.running_mean.data, bn.running_var.data
    return res


def check_sync_bn(results):
    """``results[rank]`` is a list of per-case dicts from ``W.sync_bn_cases``."""
    for case in zip(*results):
        dtype, sample, shards = case[0]["key"]
        tol = dict(rtol=1e-10, atol=1e-10) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
        ref = reference_bn(dtype, sample, shards)
        where = f"{dtype} sample {sample} shards {shards}"
        for step in range(2):
            for name in ("y", "dx"):
                got = np.concatenate([c[step][name] for c in case])
                np.testing.assert_allclose(got, ref[step][name], **tol, err_msg=f"{name} {where}")
            for name in ("dw", "db"):
                got = sum(c[step][name].astype(np.float64) for c in case)
                np.testing.assert_allclose(got, ref[step][name], **tol, err_msg=f"{name} {where}")
        np.testing.assert_allclose(np.concatenate([c["eval_y"] for c in case]), ref["eval_y"], **tol)
        for c in case:
            assert c["eval_exchanges"] == 0, "eval mode must not communicate"
            for name in ("running_mean", "running_var"):
                np.testing.assert_allclose(c[name], ref[name], **tol, err_msg=f"{name} {where}")
