"""DataParallel: the gradients of a model averaged over the ranks, the all-reduce overlapped
with backward.

    dp = DataParallel(model, optimizer=opt)      # broadcasts rank 0's parameters and buffers
    model.backward(loss_grad)                    # buckets start their Iallreduce as they fill
    opt.step()                                   # waits for what is still in flight, then steps

How: the model is flattened (nn/flat.py), so each bucket (distributed/buckets.py) is a
view of the flat gradient buffer. Every module that owns parameters gets a forward and a
backward hook (Module.register_forward_hook / register_backward_hook); once a module's
backward has run as often as its forward did in training mode since the last step (once,
for most layers; T times for a cell stepped T times; twice for a layer used twice), its
parameters are done, and each bucket whose parameters are all done is
started, in the one launch order all ranks share. A module whose forward did not run
(a table a parent reads directly) waits for the step. The optimizer becomes a subclass of its own class (same name, so
checkpoints are unchanged) whose step() first finishes the sync: it starts the buckets no
hook completed (parameters without a gradient this step, layers whose backward a parent
does by hand), waits, and scales the sums by 1/N (the mean). Every step syncs exactly
once, so all ranks always issue the same collectives.

The contract a model keeps (every nnforge layer does): a module that ran forward writes
its own parameters' gradients in its backward only (a parent may write them before the
child's backward, as GPT's tied head does, not after it); backward more often than
forward, or again once its gradients went to the all-reduce, raises a RuntimeError. Gradient
accumulation needs no_sync() around all but the last micro-batch: it turns the counting and
communication off (the passes add up locally; the next step all-reduces the sum).

BatchNorm statistics stay per rank (running ones broadcast from rank 0 only at the start;
checkpoints hold rank 0's) unless sync_batchnorm=True (distributed/sync_batchnorm.py).
"""
from __future__ import annotations

import contextlib
import time
import zlib
from typing import Optional

import numpy as np

from ..nn import flat as _flat
from ._world import init
from .buckets import plan_buckets

__all__ = ["DataParallel"]

_MB = 1 << 20
_synced_classes: dict = {}


class _SyncBeforeStep:
    """Mixed in front of an optimizer's class: step() first finishes the gradient sync."""

    def step(self, zero_grad: bool = False) -> bool:
        self._data_parallel.finish_gradient_sync()
        return super().step(zero_grad)


def synced_class(cls, mixin):
    """cls with mixin in front, keeping cls's name (checkpoints record the class name)."""
    key = (cls, mixin)
    if key not in _synced_classes:
        _synced_classes[key] = type(cls.__name__, (mixin, cls), {"__module__": cls.__module__,
                                                                 "__qualname__": cls.__qualname__})
    return _synced_classes[key]


class DataParallel:
    """Average model's gradients over the MPI ranks. optimizer (optional, attach() later):
    its step() then waits for the all-reduce first. bucket_mb: bucket size cap in MiB.
    shard_optimizer=True: ZeRO stage 1 (distributed/zero.py). overlap=False: no hooks,
    one all-reduce per bucket at the step. sync_batchnorm=True: BatchNorm layers use the
    global batch's statistics (distributed/sync_batchnorm.py)."""

    def __init__(self, model, *, optimizer=None, bucket_mb: float = 25, shard_optimizer: bool = False,
                 overlap: bool = True, sync_batchnorm: bool = False):
        if isinstance(bucket_mb, bool) or not isinstance(bucket_mb, (int, float)) or not bucket_mb > 0:
            raise ValueError(f"bucket_mb must be a positive number, got {bucket_mb!r}")
        self.world = init()
        self.module = model
        if sync_batchnorm:
            from .sync_batchnorm import convert_sync_batchnorm
            convert_sync_batchnorm(model)
        self.shard_optimizer = bool(shard_optimizer)
        self.overlap = bool(overlap)
        params = model.parameters()
        if not params:
            raise ValueError(f"DataParallel: {type(model).__name__} has no parameters")
        if _flat.owner(params) is None:
            model.flatten_parameters(optimizer.group_parameters() if optimizer is not None else None)
        self.flat = _flat.owner(params)
        self._epoch = _flat.layout_epoch()
        self.world.broadcast(self.flat.data)
        for name, buf in model.named_buffers():
            if isinstance(buf, np.ndarray) and buf.size:
                if buf.flags.c_contiguous and buf.flags.writeable:
                    self.world.broadcast(buf)
                else:
                    buf[...] = self.world.broadcast(np.ascontiguousarray(buf))
        order = {id(p): i for i, p in enumerate(params)}
        self.buckets = plan_buckets(self.flat, order, max(1, int(bucket_mb * _MB) // 4))
        self._views = [self.flat.grad[b.start:b.stop] for b in self.buckets]
        self._pending_init = np.zeros(len(self.buckets), dtype=np.int64)
        bucket_of = {}
        for k, b in enumerate(self.buckets):
            for i in b.params:
                bucket_of[id(self.flat.params[i])] = k
        self._module_buckets: dict[int, list[int]] = {}
        self._removers = []
        seen = set()
        for _, mod in model.named_modules():
            if id(mod) in seen or not mod._params:
                continue
            seen.add(id(mod))
            ks = [bucket_of[id(p)] for p in mod._params.values()]
            self._module_buckets[id(mod)] = ks
            for k in ks:
                self._pending_init[k] += 1
            if self.overlap:
                self._removers.append(mod.register_forward_hook(self._after_forward))
                self._removers.append(mod.register_backward_hook(self._after_backward))
        self._syncing = True
        self.optimizer = None
        self.last_exposed_wait_s = 0.0  # time step() spent waiting for the all-reduce (not hidden)
        self._reset_round()
        if optimizer is not None:
            self.attach(optimizer)

    # --- the optimizer -------------------------------------------------------------------------
    def attach(self, optimizer) -> None:
        """Make optimizer.step() finish the gradient sync first (ZeRO-1: shard it)."""
        if self.optimizer is not None:
            raise RuntimeError("DataParallel already has an optimizer")
        if getattr(optimizer, "_data_parallel", None) is not None:
            raise RuntimeError("this optimizer already belongs to a DataParallel")
        ids = {id(p) for p in self.flat.params}
        if any(id(p) not in ids for p in optimizer.params):
            raise ValueError("DataParallel.attach: the optimizer updates parameters that are not this model's")
        if self.shard_optimizer:
            from .zero import shard
            shard(optimizer, self)
        else:
            optimizer.__class__ = synced_class(type(optimizer), _SyncBeforeStep)
            optimizer._data_parallel = self
        self.optimizer = optimizer

    # --- the sync --------------------------------------------------------------------------------
    def _reset_round(self) -> None:
        self._pending = self._pending_init.copy()
        self._next = 0
        self._requests = []
        self._forwards: dict[int, int] = {}   # id(module) -> forward calls (training mode) this round
        self._backwards: dict[int, int] = {}
        self._launched_modules: set[int] = set()  # modules whose gradients count as final this round

    def _launch_ready(self) -> None:
        while self._next < len(self.buckets) and self._pending[self._next] <= 0:
            self._requests.append(self.world.iallreduce_sum(self._views[self._next]))
            self._next += 1

    def _after_forward(self, module) -> None:
        if self._syncing and module.training:
            key = id(module)
            self._forwards[key] = self._forwards.get(key, 0) + 1

    def _after_backward(self, module) -> None:
        if not self._syncing:
            return
        key = id(module)
        forwards = self._forwards.get(key, 0)
        if forwards == 0:
            return  # forward did not run through this module: its parameters wait for the step
        if key in self._launched_modules:
            raise RuntimeError(f"DataParallel: {type(module).__name__}.backward ran again after its gradients were "
                               f"handed to the all-reduce, before the optimizer step. Accumulating micro-batches: "
                               f"run all but the last inside dp.no_sync(); a module whose backward runs more "
                               f"often than its forward: build DataParallel(overlap=False)")
        done = self._backwards.get(key, 0) + 1
        self._backwards[key] = done
        if done < forwards:
            return
        self._launched_modules.add(key)
        for k in self._module_buckets[key]:
            self._pending[k] -= 1
        self._launch_ready()
        self.world.progress([r for r in self._requests if r is not None])

    def finish_gradient_sync(self) -> None:
        """Start the buckets not started yet, wait for all, divide by the world size."""
        if _flat.layout_epoch() != self._epoch and _flat.owner(self.module.parameters()) is not self.flat:
            raise RuntimeError("DataParallel: the model's parameters were re-flattened after DataParallel was "
                               "built; build it again")
        try:
            if self.world.size == 1:
                return
            self._pending[:] = 0
            self._launch_ready()
            t0 = time.perf_counter()
            self.world.wait(self._requests, f"gradient all-reduce ({len(self.buckets)} buckets, "
                                            f"{self.flat.grad.nbytes / _MB:.1f} MiB)")
            self.last_exposed_wait_s = time.perf_counter() - t0
            np.multiply(self.flat.grad, np.float32(1.0 / self.world.size), out=self.flat.grad)
        finally:
            self._reset_round()

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside accumulate gradients locally, without communication; the
        next optimizer step all-reduces the sum."""
        was, self._syncing = self._syncing, False
        try:
            yield self
        finally:
            self._syncing = was

    # --- the model's calls -----------------------------------------------------------------------
    def forward(self, *inputs):
        return self.module.forward(*inputs)

    __call__ = forward

    def backward(self, *grad_outputs):
        return self.module.backward(*grad_outputs)

    @property
    def buckets_started(self) -> int:
        """Buckets whose all-reduce has started since the last step (backward starts them)."""
        return self._next

    @property
    def bytes_per_step(self) -> int:
        """Bytes each rank all-reduces per optimizer step (the whole flat gradient buffer)."""
        return int(self.flat.grad.nbytes)

    # --- checks ----------------------------------------------------------------------------------
    def checksum(self) -> int:
        """CRC-32 of this rank's parameter bytes."""
        return zlib.crc32(self.flat.data.view(np.uint8))

    def verify_identical(self) -> int:
        """Compare the parameters' checksum across ranks; RuntimeError naming the ranks that
        differ from rank 0. Returns the checksum."""
        sums = self.world.gather_objects(self.checksum())
        bad = [r for r, s in enumerate(sums) if s != sums[0]]
        if bad:
            raise RuntimeError(f"DataParallel: parameters differ across ranks after training (checksum of rank 0 "
                               f"{sums[0]:#010x}; ranks {bad} have {[f'{sums[r]:#010x}' for r in bad]})")
        return sums[0]

    def close(self) -> None:
        """Remove the backward hooks (the model trains alone again)."""
        for remove in self._removers:
            remove()
        self._removers = []

    def __repr__(self) -> str:
        return (f"DataParallel({type(self.module).__name__}, rank {self.world.rank}/{self.world.size}, "
                f"{len(self.buckets)} buckets, {self.bytes_per_step / _MB:.2f} MiB per step"
                f"{', ZeRO-1' if self.shard_optimizer else ''})")
