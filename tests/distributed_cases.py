"""Programs the multi-process tests (tests/test_distributed.py) run under mpiexec, one per
case: python distributed_cases.py CASE OUT_DIR [options]. Rank 0 writes its results to
OUT_DIR as .npz; the test compares them with a single-process run of the same steps
(train() below, the one training loop both sides use)."""
from __future__ import annotations

import os
import sys
import time

import numpy as np

import nnforge
from nnforge import data, distributed as dist, nn


class WithUnused(nn.Model):
    """An MLP with a layer that never gets a gradient (it is not on the forward path)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(13, 29, activation="relu"), nn.Linear(29, 17, activation="relu"),
                                  nn.Linear(17, 5))
        self.unused = nn.Linear(7, 3)

    def forward(self, x):
        return self.body.forward(x)

    def backward(self, g):
        return self.body.backward(g)


def mlp_problem(seed: int = 3, n: int = 84, batchnorm: bool = False):
    """(model, x, y); batchnorm=True: Linear-BatchNorm1d-ReLU-Linear instead of WithUnused."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 13)).astype(np.float32)
    y = rng.integers(0, 5, size=n)
    nnforge.seed(seed)
    if batchnorm:
        # no bias before the norm: its gradient is 0 up to rounding, which Adam would amplify to lr-sized steps
        return nn.Sequential(nn.Linear(13, 29, bias=False), nn.BatchNorm1d(29), nn.ReLU(), nn.Linear(29, 5)), x, y
    return WithUnused(), x, y


def gpt_problem(seed: int = 5):
    nnforge.seed(seed)
    model = nn.build_model("gpt", (8,), 11, n_layer=2, n_head=2, n_embd=16)
    ids = np.random.default_rng(seed).integers(0, 11, size=400)
    return model, ids


def train(kind: str, steps: int, batch: int, *, distributed: bool, shard_optimizer: bool = False,
          bucket_mb: float = 0.004, resume: str = None, save: str = None, start: int = 0,
          accumulate: bool = False):
    """`steps` optimizer steps of an MLP ("mlp"; "bn": with BatchNorm, synchronised under
    DataParallel) or a tiny GPT on global batches of batch x world samples; this rank takes
    its part (shard=). Returns (model, optimizer, dp or None)."""
    world = dist.world_size() if distributed else 1
    rank = dist.rank() if distributed else 0
    if kind in ("mlp", "bn"):
        model, x, y = mlp_problem(batchnorm=kind == "bn")
        opt = nn.Adam(model.parameters(), lr=1e-2, clip_grad_norm=5.0)
        model.flatten_parameters()
    else:
        model, ids = gpt_problem()
        opt = nn.AdamW(nn.decay_groups(model, 0.1), lr=3e-3)
        model.flatten_parameters(opt.group_parameters())
    dp = dist.DataParallel(model, optimizer=opt, bucket_mb=bucket_mb, shard_optimizer=shard_optimizer,
                           sync_batchnorm=kind == "bn") if distributed else None
    if resume is not None:
        nn.checkpoint.load(resume, model, opt)
    loss_fn = nn.CrossEntropyLoss()
    gen = np.random.default_rng(11)
    for step in range(steps):
        if kind != "gpt":
            order = gen.permutation(len(x))[:batch * world]
            (xb, yb), = data.batches(x[order], y[order], batch_size=batch,
                                     shard=(rank, world) if distributed else False)
            if step < start:
                continue
            if accumulate and dp is not None:  # two half-batches: the first without communication
                h = len(xb) // 2
                with dp.no_sync():
                    loss_fn.forward(model.forward(xb[:h]), yb[:h])
                    model.backward(loss_fn.backward() * np.float32(h / len(xb)))
                loss_fn.forward(model.forward(xb[h:]), yb[h:])
                model.backward(loss_fn.backward() * np.float32((len(xb) - h) / len(xb)))
            else:
                loss_fn.forward(model.forward(xb), yb)
                model.backward(loss_fn.backward())
        else:
            starts = gen.integers(0, len(ids) - 9, size=batch * world)
            if step < start:
                continue
            w = ids[starts[:, None] + np.arange(9)][rank * batch:(rank + 1) * batch]
            model.loss(np.ascontiguousarray(w[:, :-1]), np.ascontiguousarray(w[:, 1:]))
            model.backward()
        opt.step(zero_grad=True)
        if save is not None and step + 1 == steps // 2:
            if distributed:
                dist.save_checkpoint(save, model, opt)
            else:
                nn.checkpoint.save(save, model, opt)
    return model, opt, dp


def _write(out: str, name: str, model, opt) -> None:
    state = opt.state_dict()  # collective under ZeRO-1: every rank calls it
    held = dist.world().gather_objects(sum(b.size for bufs in opt.buffers.values() for b in bufs))
    if dist.is_main():
        np.savez(os.path.join(out, name), **{f"model/{k}": v for k, v in model.state_dict().items()},
                 **{f"optim/{k}": v for k, v in state.items()}, state_floats_per_rank=np.array(held))


def case_collectives(out: str) -> None:
    r, n = dist.rank(), dist.world_size()
    arrays = [np.random.default_rng(100 + k).standard_normal(37).astype(np.float32) for k in range(n)]
    ints = [np.random.default_rng(200 + k).integers(-50, 50, size=(3, 5)) for k in range(n)]
    a, b = arrays[r].copy(), arrays[r].copy()
    dist.all_reduce(a)
    dist.all_reduce(b, op="mean")
    i = ints[r].copy()
    dist.all_reduce(i)
    c = np.full(6, float(r), dtype=np.float64)
    dist.broadcast(c, root=n - 1)
    objs = dist.world().gather_objects({"rank": r})
    dist.barrier()
    if dist.is_main():
        np.savez(os.path.join(out, "collectives.npz"), sum=a, mean=b, ints=i, bcast=c,
                 ranks=np.array([o["rank"] for o in objs]), world=np.array(n))


# the configurations case_train runs: (kind, shard_optimizer, accumulate)
TRAIN_CONFIGS = (("mlp", False, False), ("mlp", True, False), ("mlp", False, True), ("gpt", False, False),
                 ("gpt", True, False), ("bn", False, False))
GLOBAL_BATCH = {"mlp": 12, "gpt": 6, "bn": 12}


def config_name(kind: str, sharded: bool, accumulate: bool) -> str:
    return f"{kind}-zero{int(sharded)}-acc{int(accumulate)}.npz"


def case_train(out: str) -> None:
    """Every TRAIN_CONFIGS run, 6 steps each on this job's ranks."""
    for kind, sharded, accumulate in TRAIN_CONFIGS:
        model, opt, dp = train(kind, 6, GLOBAL_BATCH[kind] // dist.world_size(), distributed=True,
                               shard_optimizer=sharded, accumulate=accumulate)
        dp.verify_identical()
        _write(out, config_name(kind, sharded, accumulate), model, opt)
        dp.close()


def case_resume(out: str, phase: str) -> None:
    """phase "write": 6 steps, rank 0 writing a checkpoint after 3; phase "continue": steps
    4-6 from that checkpoint in a fresh model, on this run's ranks (global batch 12 either
    way); with and without ZeRO-1."""
    per_rank = 12 // dist.world_size()
    for sharded in (False, True):
        ck = os.path.join(out, f"half-zero{int(sharded)}.npz")
        if phase == "write":
            model, opt, dp = train("mlp", 6, per_rank, distributed=True, shard_optimizer=sharded, save=ck)
            _write(out, f"straight-zero{int(sharded)}.npz", model, opt)
        else:
            model, opt, dp = train("mlp", 6, per_rank, distributed=True, shard_optimizer=sharded, resume=ck,
                                   start=3)
            dp.verify_identical()
            _write(out, f"resumed-zero{int(sharded)}-n{dist.world_size()}.npz", model, opt)
        dp.close()


def case_raise(out: str) -> None:
    dist.init()
    if dist.rank() == 1:
        raise ValueError("rank 1 fails on purpose")
    dist.all_reduce(np.zeros(4, dtype=np.float32))  # rank 0 waits here until the abort


def case_timeout(out: str) -> None:
    dist.init(timeout_s=1.0)
    if dist.rank() == 1:
        time.sleep(30)  # busy elsewhere: rank 0's all-reduce times out and names rank 1
    dist.all_reduce(np.zeros(4, dtype=np.float32))


if __name__ == "__main__":
    nnforge.set_num_threads(1)
    globals()[f"case_{sys.argv[1]}"](*sys.argv[2:])
