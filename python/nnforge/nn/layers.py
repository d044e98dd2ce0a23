"""Dense layers and activations on nnforge kernels: explicit forward/backward (see
module.py). Normalisation layers are in norm.py, convolution in conv.py, pooling in
pool.py, joins and splits in merge.py.

forward(x) caches what backward needs; backward(grad_out) returns dL/dx and
accumulates parameter gradients into Parameter.grad. Inputs are float32 arrays
with the batch on axis 0.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .. import _random, ops
from .._args import flag_arg, float_arg, int_arg
from . import init
from ._checks import _check_grad, _float32_input, _need_forward, _positive_int
from .module import Module, Parameter

__all__ = ["Dropout", "Embedding", "Flatten", "GELU", "LeakyReLU", "Linear", "ReLU", "Sigmoid", "Softmax",
           "Tanh"]

_LINEAR_ACTIVATIONS = (None, "relu", "gelu_tanh", "gelu_erf")


class Linear(Module):
    """y = act(x @ W + b) with W stored as (in_features, out_features).

    activation: None, "relu", "gelu_tanh" or "gelu_erf". ReLU is fused into the
    GEMM epilogue; GELU keeps the pre-activation for its backward. Set
    needs_input_grad = False on a first layer to skip computing dL/dx.
    precision "bf16" (Module.set_precision): the three GEMMs (y = x W, dW += x^T dz,
    dx = dz W^T) take bf16-rounded operands with float32 accumulation (ops.matmul's
    precision="bf16"); bias, activation and gradients stay float32.
    Init as torch: W, b ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform, a=sqrt(5)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 activation: Optional[str] = None):
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        if activation not in _LINEAR_ACTIVATIONS:
            raise ValueError(f"activation must be one of {_LINEAR_ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.needs_input_grad = True
        self.weight = Parameter(init.kaiming_uniform((self.in_features, self.out_features), a=math.sqrt(5.0)))
        bound = 1.0 / math.sqrt(self.in_features)
        self.bias = Parameter(init.uniform((self.out_features,), -bound, bound)) \
            if flag_arg(bias, "bias", op="Linear") else None
        self._x = self._saved = None
        self._dbuf = None  # reused buffer for the activation backward (never returned)

    def forward(self, x):
        x = _float32_input(x, "Linear")
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"Linear expected input of shape (N, {self.in_features}), got {x.shape}")
        b = self.bias.data if self.bias is not None else None
        if self.activation == "relu":
            y = ops.matmul(x, self.weight.data, bias=b, activation="relu", precision=self.precision)
            self._saved = y
        elif self.activation is None:
            y = ops.matmul(x, self.weight.data, bias=b, precision=self.precision)
            self._saved = None
        else:
            z = ops.matmul(x, self.weight.data, bias=b, precision=self.precision)
            self._saved = z
            y = ops.gelu(z, "tanh" if self.activation == "gelu_tanh" else "none")
        self._x = x
        return y

    def _pre_activation_grad(self, dy):
        if self.activation is None:
            return dy
        if self._dbuf is None or self._dbuf.shape != dy.shape:
            self._dbuf = np.empty(dy.shape, np.float32)
        if self.activation == "relu":
            return ops.relu_backward(dy, self._saved, out=self._dbuf)
        approx = "tanh" if self.activation == "gelu_tanh" else "none"
        return ops.gelu_backward(dy, self._saved, approx, out=self._dbuf)

    def backward(self, grad_out):
        x = _need_forward(self._x, "Linear")
        dy = _check_grad(grad_out, (x.shape[0], self.out_features), "Linear")
        if dy.dtype != np.float32:
            raise TypeError(f"Linear.backward expects float32 grad_out, got {dy.dtype}")
        dz = self._pre_activation_grad(dy)
        ops.matmul(x.T, dz, out=self.weight.grad, beta=1.0, precision=self.precision)  # dW += x^T dz
        if self.bias is not None:
            ops.sum_rows(dz, self.bias.grad, accumulate=True)  # db += column sums of dz
        if not self.needs_input_grad:
            return None
        return ops.matmul(dz, self.weight.data.T, precision=self.precision)

    def extra_repr(self) -> str:
        act = f", activation={self.activation!r}" if self.activation else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}{act}"


class ReLU(Module):
    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x):
        self._y = ops.relu(_float32_input(x, "ReLU"))
        return self._y

    def backward(self, grad_out):
        y = _need_forward(self._y, "ReLU")
        return ops.relu_backward(_check_grad(grad_out, y.shape, "ReLU"), y)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float_arg(negative_slope, "negative_slope", op="LeakyReLU")
        self._x = None

    def forward(self, x):
        self._x = _float32_input(x, "LeakyReLU")
        return ops.leaky_relu(x, self.negative_slope)

    def backward(self, grad_out):
        x = _need_forward(self._x, "LeakyReLU")
        return ops.leaky_relu_backward(_check_grad(grad_out, x.shape, "LeakyReLU"), x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class GELU(Module):
    """GELU; approximate="none" (exact, torch's default) or "tanh"."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self._x = None

    def forward(self, x):
        self._x = _float32_input(x, "GELU")
        return ops.gelu(x, self.approximate)

    def backward(self, grad_out):
        x = _need_forward(self._x, "GELU")
        return ops.gelu_backward(_check_grad(grad_out, x.shape, "GELU"), x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x):
        self._y = ops.tanh(_float32_input(x, "Tanh"))
        return self._y

    def backward(self, grad_out):
        y = _need_forward(self._y, "Tanh")
        return ops.tanh_backward(_check_grad(grad_out, y.shape, "Tanh"), y)


class Sigmoid(Module):
    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x):
        self._y = ops.sigmoid(_float32_input(x, "Sigmoid"))
        return self._y

    def backward(self, grad_out):
        y = _need_forward(self._y, "Sigmoid")
        return ops.sigmoid_backward(_check_grad(grad_out, y.shape, "Sigmoid"), y)


class Softmax(Module):
    """Softmax along `axis` (default the last). For classification training use
    CrossEntropyLoss on logits instead (fused and more accurate)."""

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = int_arg(axis, "axis", op="Softmax")
        self._y = None

    def forward(self, x):
        self._y = ops.softmax(_float32_input(x, "Softmax"), axis=self.axis)
        return self._y

    def backward(self, grad_out):
        y = _need_forward(self._y, "Softmax")
        return ops.softmax_backward(y, _check_grad(grad_out, y.shape, "Softmax"), axis=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Dropout(Module):
    """Inverted dropout with probability p in training mode; identity in eval mode.
    Each forward draws a fresh seed from nnforge's generator (nnforge.seed makes
    the masks reproducible)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = float_arg(p, "p", low=0.0, high=1.0, high_open=True, op="Dropout")
        self._mask = None

    def forward(self, x):
        x = _float32_input(x, "Dropout")
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        y, self._mask = ops.dropout(x, self.p, _random.next_seed())
        return y

    def backward(self, grad_out):
        if self._mask is None:
            return grad_out
        return ops.dropout_backward(_check_grad(grad_out, self._mask.shape, "Dropout"), self._mask, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...) (a view when x is contiguous)."""

    def __init__(self):
        super().__init__()
        self._shape = None

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 1:
            raise ValueError("Flatten expects an array with a batch axis")
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out):
        shape = _need_forward(self._shape, "Flatten")
        n = int(np.prod(shape[1:], dtype=np.int64))
        _check_grad(grad_out, (shape[0], n), "Flatten")
        return grad_out.reshape(shape)


class Embedding(Module):
    """Lookup table: int indices (any shape) -> indices.shape + (embedding_dim,).
    Weight ~ N(0, 1) like torch. backward scatter-adds deterministically into
    weight.grad and returns None (indices have no gradient)."""

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        self.num_embeddings = _positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = _positive_int(embedding_dim, "embedding_dim")
        self.weight = Parameter(_random.generator().standard_normal(
            (self.num_embeddings, self.embedding_dim)).astype(np.float32))
        self._idx = None

    def forward(self, indices):
        if not isinstance(indices, np.ndarray) or indices.dtype.kind not in "iu":
            raise TypeError(f"Embedding expects an integer numpy array of indices, got "
                            f"{getattr(indices, 'dtype', type(indices).__name__)}")
        if indices.size:
            lo, hi = int(indices.min()), int(indices.max())
            if lo < 0 or hi >= self.num_embeddings:
                bad = lo if lo < 0 else hi
                raise ValueError(f"Embedding index {bad} is out of range [0, {self.num_embeddings})")
        if indices.dtype not in (np.int64, np.int32):
            indices = indices.astype(np.int64)
        self._idx = indices
        return self.weight.data[indices]

    def backward(self, grad_out):
        idx = _need_forward(self._idx, "Embedding")
        dy = _check_grad(grad_out, idx.shape + (self.embedding_dim,), "Embedding")
        ops.embedding_backward(idx, dy, self.num_embeddings, self.weight.grad, accumulate=True)
        return None

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
