"""The steps of compressing a trained float model, in order:

    prune_model(model, 0.9)                     magnitude masks (global by default), or
    prune_model(model, 0.5, structured=True)    whole neurons / channels removed (layers shrink)
    finetune(model, train, epochs=10, ...)      masks kept exactly 0 by the fused optimizer
                                                step; gradual=s reaches sparsity s on
                                                Zhu & Gupta's cubic schedule during it instead
    quantize(model, "int8", batches)            static PTQ (min-max ranges on `batches`),
    quantize(model, "bf16")                     weights rounded to bf16, precision "bf16",
    quantize(model, "none")                     float32 kept

Sparse serving rule: a pruned Linear is served by nn.SparseLinear (ops.sparse_matmul)
when its weight is at least SPARSE_FROM zeros (the default of `nnforge compress
--sparse-from`; compress.checkpoint.load applies prune.to_sparse with the saved value).
SPARSE_FROM is the crossover `nnforge bench sparse --sweep` measured on a 2-core Zen 4
(AVX-512, quiet machine, sparse kernel v2): 256x784->256, 1024^3 and 2048^3 turn
sparse-faster from 70-80% zeros; the digits MLP's small layers (batch 32 / 180), whose
calls take 10-60 us, from 85-93% (the 128 -> 10 head hardly ever). So a 90%-pruned
MLP is served sparse. int8 layers are never sparse (no sparse int8 kernel).
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

import nnforge

from .. import ops, prune, quant
from ..nn.module import Module

__all__ = ["SPARSE_FROM", "finetune", "prune_model", "quantize"]

SPARSE_FROM = 0.9
# gradual pruning: PRUNING_EVENTS magnitude steps spread over the first 2/3 of the
# fine-tune, leaving the last third to recover at the final sparsity
PRUNING_EVENTS = 10


def prune_model(model: Module, amount: float, *, structured: bool = False, scope: str = "global") -> Module:
    """Magnitude-prune the fraction `amount` of the Linear / Conv2d weights (scope "global":
    of all of them together, "layer": of each), or with structured=True remove that
    fraction of each layer's neurons / output channels (prune.structured; a new, smaller
    set of Parameters). Returns the model (changed in place)."""
    if structured:
        return prune.structured(model, amount)
    prune.magnitude(model, amount, scope=scope)
    return model


def finetune(model: Module, train: tuple, *, epochs: int, optimizer: str = "adam", lr: Optional[float] = None,
             batch_size: int = 32, seed: int = 0, gradual: Optional[float] = None, scope: str = "global") -> Module:
    """Train `model` (compiled afresh) for `epochs` on train = (x, y). Pruning masks are
    kept by the optimizer's fused step. gradual=s prunes by magnitude to sparsity s on the
    cubic schedule (PRUNING_EVENTS steps over the first 2/3 of the steps) and ends exactly
    at s. The masks are dropped at the end (the pruned weights stay 0)."""
    x, y = train
    if epochs > 0:
        nnforge.seed(seed)
        model.compile(optimizer, loss="cross_entropy", metrics=["accuracy"], **({} if lr is None else {"lr": lr}))
        callbacks = []
        if gradual is not None:
            total = epochs * -(-len(x) // batch_size)
            frequency = max(1, (2 * total // 3) // PRUNING_EVENTS)
            schedule = prune.PruningSchedule(gradual, start=0, frequency=frequency, steps=PRUNING_EVENTS)
            callbacks.append(prune.GradualPruning(schedule, scope=scope))
        model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=callbacks)
    if gradual is not None:
        prune.magnitude(model, gradual, scope=scope)  # the schedule's last event may lie past a short run's end
    prune.remove(model)
    return model.eval()


def quantize(model: Module, kind: str, batches: Optional[Iterable[np.ndarray]] = None) -> Module:
    """The model in weight format `kind`: "int8" a new model converted by static PTQ
    (needs calibration `batches`), "bf16" the model itself with every Parameter rounded to
    bf16 (to nearest even) and precision "bf16" (its layers compute with bf16 operands),
    "none" the model itself."""
    if kind == "int8":
        if batches is None:
            raise ValueError("quantize: int8 needs calibration batches")
        prepared = quant.prepare(model.eval())
        quant.calibrate(prepared, batches)
        return quant.convert(prepared)
    if kind == "bf16":
        for p in model.parameters():
            p.data[...] = ops.to_float32(ops.to_bfloat16(p.data))
        return model.set_precision("bf16").eval()
    if kind == "none":
        return model.eval()
    raise ValueError(f"quantize: kind must be 'int8', 'bf16' or 'none', got {kind!r}")
