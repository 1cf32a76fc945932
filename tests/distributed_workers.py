"""Functions that run on every rank in the distributed tests (spawned workers and MPI ranks).

Each builds the same global data from a seed, keeps its own shard, and returns
what the parent compares with one process running on the whole batch.
"""
import os
import signal
import time

import numpy as np

import tinynorm as tn
import tinynorm.distributed as dist
import tinynorm.functional as F
from tinynorm import nn, optim

# (shape of one sample, shard sizes per world size)
SHARD_CASES = {
    2: [(4, 4), (5, 2), (6, 0)],
    3: [(3, 3, 3), (4, 1, 2), (3, 0, 4)],
}
SAMPLE_SHAPES = [(5, 3, 2), (6,)]
DTYPES = ("float64", "float32")


def global_batch(shards, sample, dtype, seed):
    rng = np.random.default_rng(seed)
    n = sum(shards)
    c = sample[0]
    x = (rng.standard_normal((n,) + sample) * 2 + 3).astype(dtype)
    dy = rng.standard_normal((n,) + sample).astype(dtype)
    w = rng.uniform(0.5, 1.5, c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    return x, dy, w, b


def shard_of(array, shards, rank):
    start = sum(shards[:rank])
    return array[start:start + shards[rank]]


def sync_bn_cases():
    """Run SyncBatchNorm (two training steps, then eval) on this rank's shard of every case."""
    comm = dist.get_communicator()
    out = []
    for dtype in DTYPES:
        for sample in SAMPLE_SHAPES:
            for case, shards in enumerate(SHARD_CASES[comm.world_size]):
                bn = nn.SyncBatchNorm(sample[0], momentum=0.3, dtype=np.dtype(dtype).type)
                res = {}
                for step in range(2):
                    x, dy, w, b = global_batch(shards, sample, dtype, seed=100 * case + step)
                    bn.weight.data[...] = w
                    bn.bias.data[...] = b
                    bn.zero_grad()
                    xs = tn.tensor(shard_of(x, shards, comm.rank), requires_grad=True)
                    y = bn(xs)
                    y.backward(shard_of(dy, shards, comm.rank))
                    res[step] = dict(y=y.data.copy(), dx=xs.grad.data.copy(),
                                     dw=bn.weight.grad.data.copy(), db=bn.bias.grad.data.copy())
                bn.eval()
                before = getattr(comm, "exchanges", 0)
                ye = bn(tn.tensor(shard_of(x, shards, comm.rank))).data.copy()
                res["eval_exchanges"] = getattr(comm, "exchanges", 0) - before
                res["eval_y"] = ye
                res["running_mean"] = bn.running_mean.data.copy()
                res["running_var"] = bn.running_var.data.copy()
                res["key"] = (dtype, sample, shards)
                out.append(res)
    return out


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 5 * 5, 3)
        self.bn1 = nn.BatchNorm1d(3)

    def forward(self, x):
        return self.bn1(self.fc(self.flatten(self.relu(self.bn(self.conv(x))))))


def dp_batches(steps, batch=10):
    rng = np.random.default_rng(7)
    for _ in range(steps):
        yield rng.standard_normal((batch, 1, 5, 5)), rng.integers(0, 3, batch)


def dp_train(steps=4, shards=None):
    """Data-parallel SGD with SyncBN on this rank's shard; returns the final state_dict."""
    comm = dist.get_communicator()
    tn.manual_seed(1000 + comm.rank)          # different init per rank: broadcast must fix it
    model = TinyCNN().double()
    if comm.world_size > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        dist.broadcast_module(model)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for x, y in dp_batches(steps):
        split = shards or [len(y) // comm.world_size + (r < len(y) % comm.world_size)
                           for r in range(comm.world_size)]
        xs, ys = shard_of(x, split, comm.rank), shard_of(y, split, comm.rank)
        loss = F.cross_entropy(model(tn.tensor(xs)), ys, reduction="sum") * (1.0 / len(y))
        opt.zero_grad()
        loss.backward()
        dist.allreduce_gradients(model, op="sum")
        opt.step()
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


def single_train(steps=4):
    """The reference: one process, plain BN, the whole batch, mean loss."""
    tn.manual_seed(1000)
    model = TinyCNN().double()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for x, y in dp_batches(steps):
        loss = F.cross_entropy(model(tn.tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


def fault(kind, rank_at_fault=1):
    """Rank ``rank_at_fault`` raises, dies or hangs before the second exchange; others go on."""
    comm = dist.get_communicator()
    comm.allreduce(np.ones(8))
    if comm.rank == rank_at_fault:
        if kind == "raise":
            raise ValueError("boom from the test")
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "hang":
            time.sleep(120)
    for _ in range(3):
        comm.allreduce(np.ones(8))
    return comm.rank


def mismatched_tags():
    comm = dist.get_communicator()
    comm.allreduce(np.ones(4), tag=f"layer{comm.rank} forward")


def mismatched_sizes():
    comm = dist.get_communicator()
    comm.allreduce(np.ones(4 + comm.rank))


def collectives():
    """Every collective on awkward payloads: empty, larger than a slot, ints."""
    comm = dist.get_communicator()
    r, w = comm.rank, comm.world_size
    big = np.arange(70000, dtype=np.float64) * (r + 1)
    return dict(
        sum=comm.allreduce(np.full(3, r + 1.0)),
        mean=comm.allreduce(np.full(3, r + 1.0), op="mean"),
        max=comm.allreduce(np.array([r, -r]), op="max"),
        gather=comm.allgather(np.arange(4, dtype=np.int32) + 10 * r),
        empty=comm.allgather(np.empty((0, 3))),
        bcast=comm.broadcast(np.arange(5.0) + r, src=w - 1),
        big=comm.allreduce(big),
        bigcast=comm.broadcast(big, src=0),
        rank=r, world=w, threads=__import__("numba").get_num_threads(),
    )
