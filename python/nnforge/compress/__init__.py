"""Model compression pipelines: prune (magnitude or structured), fine-tune with masks,
quantise (int8 / bf16 / none) and the compressed checkpoint (`nnforge compress` writes
it, `nnforge compress --eval` reads it).

    steps.prune_model / steps.finetune / steps.quantize    the steps (compress/steps.py)
    checkpoint.save / checkpoint.load                      the file (compress/checkpoint.py)
"""
from . import checkpoint, steps
from .checkpoint import QUANTIZE
from .steps import SPARSE_FROM, finetune, prune_model, quantize

__all__ = ["QUANTIZE", "SPARSE_FROM", "checkpoint", "finetune", "prune_model", "quantize", "steps"]
