"""Fused multi-tensor optimizer steps (re-exported by nnforge.ops).

Every step takes Python lists/tuples of float32 C-contiguous writeable ndarrays
(params and, per parameter, same-shaped grads and state buffers), updates them in
place in one pass over memory across all tensors, and returns True; with
check_finite=True it returns False and changes nothing when a gradient holds
inf/NaN. grad_scale multiplies each gradient as it is read, zero_grad=True writes
0 to the grads in the same pass. The algorithms follow torch.optim (SGD, Adam,
AdamW, RMSprop, Adagrad), so trajectories match PyTorch to float32 rounding.

Clip and step with one gradient read for the norm and one in the step:

    n = grad_norm(grads)
    adamw_step(params, grads, m, v, step=t, lr=lr, grad_scale=clip_coef(n, max_norm))

grad_norm doubles as the finite check (a finite float64 norm means every
gradient is finite), so clip + skip-on-overflow reads the gradients once for both:

    n = grad_norm(grads)
    if math.isfinite(n):
        adamw_step(..., grad_scale=clip_coef(n, max_norm))   # check_finite not needed

check_finite=True on its own costs one extra read of the gradients.

Two optional per-element extras ride in the same pass (every step takes them):
    masks=[uint8 arrays]          pruning: where a mask is 0 the step stores 0 to the
                                  parameter and to its state (pruned weights stay exactly
                                  0, their moments 0); nonzero keeps. A mask of all ones
                                  gives bit-identical results to no mask.
    bf16_copies=[bfloat16 arrays] mixed precision: receives each updated parameter
                                  rounded to nearest even (the bits ops.to_bfloat16 gives).
Either list has one array per parameter, of its shape (C-contiguous; bf16_copies writeable).

The functions are the compiled ones themselves (no Python wrapper per call);
their signatures and docstrings live in csrc/bindings/bind_optim.cpp.
"""
from __future__ import annotations

from . import _core

__all__ = [
    "adagrad_step", "adam_step", "adamw_step", "clip_coef", "clip_grad_norm", "grad_norm",
    "rmsprop_step", "sgd_step", "stream_triad",
]

sgd_step = _core.sgd_step
adam_step = _core.adam_step
adamw_step = _core.adamw_step
rmsprop_step = _core.rmsprop_step
adagrad_step = _core.adagrad_step
grad_norm = _core.grad_norm
clip_grad_norm = _core.clip_grad_norm
clip_coef = _core.clip_coef
stream_triad = _core.stream_triad
