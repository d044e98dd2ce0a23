"""SparseLinear: an inference-only Linear whose weight is CSR (ops.sparse_matmul).

Built from a pruned Linear (SparseLinear.from_linear, or prune.to_sparse for a whole
model). It has no Parameters and no backward: training goes through Linear with masks
(nnforge.prune), and a SparseLinear only ever runs forward. It is not in state_dict:
checkpoint the pruned Linear model and convert after loading (CSRMatrix.to_arrays /
from_arrays store the weight alone).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ._checks import _float32_input
from .layers import Linear
from .module import Module

__all__ = ["SparseLinear"]


class SparseLinear(Module):
    """y = act(x @ W^T + b), W (out_features, in_features) as an ops.CSRMatrix."""

    def __init__(self, weight: "ops.CSRMatrix", bias=None, activation=None):
        super().__init__()
        if not isinstance(weight, ops.CSRMatrix):
            raise TypeError(f"SparseLinear: weight must be an ops.CSRMatrix, got {type(weight).__name__}")
        if activation not in (None, "relu", "gelu_tanh", "gelu_erf"):
            raise ValueError(f"SparseLinear: activation must be None, 'relu', 'gelu_tanh' or 'gelu_erf', "
                             f"got {activation!r}")
        self.out_features, self.in_features = weight.shape
        if bias is not None:
            bias = np.array(bias, np.float32)
            if bias.shape != (self.out_features,):
                raise ValueError(f"SparseLinear: bias must have shape ({self.out_features},), got {bias.shape}")
        self.weight, self.bias, self.activation = weight, bias, activation

    @classmethod
    def from_linear(cls, linear: Linear) -> "SparseLinear":
        """The same function as `linear` (its weight's zeros dropped)."""
        if not isinstance(linear, Linear):
            raise TypeError(f"SparseLinear.from_linear expects an nn.Linear, got {type(linear).__name__}")
        bias = None if linear.bias is None else linear.bias.data.copy()
        return cls(ops.to_csr(np.ascontiguousarray(linear.weight.data.T)), bias, linear.activation)

    def forward(self, x):
        x = _float32_input(x, "SparseLinear")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"SparseLinear expected input of shape (N, {self.in_features}), got {x.shape}")
        relu = self.activation == "relu"
        y = ops.sparse_matmul(x, self.weight, bias=self.bias, activation="relu" if relu else None)
        if self.activation in ("gelu_tanh", "gelu_erf"):
            y = ops.gelu(y, "tanh" if self.activation == "gelu_tanh" else "none")
        return y

    def backward(self, grad_out):
        raise NotImplementedError("SparseLinear is inference-only (no backward): train the pruned nn.Linear "
                                  "(nnforge.prune masks) and convert it afterwards")

    def extra_repr(self) -> str:
        act = f", activation={self.activation!r}" if self.activation else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"nnz={self.weight.nnz}, bias={self.bias is not None}{act}")
