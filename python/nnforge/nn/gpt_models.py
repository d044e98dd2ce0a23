"""The GPT builder, registered as model "gpt" (nn/registry.py; `nnforge train --model gpt`).

Defaults are the nanoGPT CPU recipe for a character model: 4 layers, 4 heads, 128 wide,
context 64, batch 12, AdamW lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on matrices
only (nn.decay_groups), 2000 steps, dropout 0, train / val loss every 250 steps.

Measured (2-core Intel AVX-512 dev host, seed 0): `val loss 1.3309 after 2000 steps,
training 50.3s` (23.8 ms/step, evaluation 2.8 s); PyTorch with the same data, windows,
init and optimizer (bench/gpt_step.torch_train) 1.3289. On a loaded host the same run
took 90-145 s (2-thread kernels stall when another process takes a core).
"""
from __future__ import annotations

from .gpt import GPT
from .registry import ModelSpec, register_model

__all__ = ["GPT_DEFAULTS", "build_gpt"]

GPT_DEFAULTS = {"steps": 2000, "batch_size": 12, "context": 64, "n_layer": 4, "n_head": 4, "n_embd": 128,
                "dropout": 0.0, "optimizer": "adamw", "lr": 1e-3, "betas": (0.9, 0.99), "weight_decay": 0.1,
                "eval_every": 250, "eval_batches": 20}


def build_gpt(input_shape, num_classes: int, *, n_layer: int = 4, n_head: int = 4, n_embd: int = 128,
              dropout: float = 0.0, tie_weights: bool = True) -> GPT:
    """input_shape (context,) and num_classes = the vocabulary size -> nn.GPT."""
    (context,) = input_shape
    return GPT(num_classes, int(context), n_layer, n_head, n_embd, dropout=dropout, tie_weights=tie_weights)


register_model("gpt", ModelSpec(build_gpt, "text", dict(GPT_DEFAULTS),
                                "character GPT 4 layers x 4 heads x 128, context 64 (text: pydoc_data or --data)"))
