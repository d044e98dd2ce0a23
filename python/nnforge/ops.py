"""Fast ops on float32 arrays, backed by nnforge's own kernels.

Arrays may be NumPy arrays or any CPU object exporting DLPack (torch / JAX CPU
tensors) or the buffer protocol: they are viewed without a copy (the kernel reads
the tensor's own memory), `out=` may be such an object too (the result is written
into its memory), and results are NumPy arrays. dtypes are never converted; a
tensor on another device is a TypeError naming the device (nnforge._args.as_ndarray,
the one rule, used by the wrappers and by the C++ ArrayArg builder alike).

Each function validates its inputs in the compiled binding (clear TypeError /
ValueError naming shapes and dtypes), releases the GIL and runs the kernel.

Arguments: TypeError for a wrong type or dtype (bool or 2.0 for a size, 1 for a flag, a
list for an array), ValueError for a wrong shape or a value outside its domain (a window
of 0, a negative eps, NaN for a hyper-parameter); nothing is silently converted.

NaN and inf propagate as PyTorch propagates them: an output is NaN exactly where the
float64 reference evaluation is NaN and +-inf where it is +-inf (relu(NaN) = NaN, also in
the fused matmul / conv2d epilogues; a max-pool window with NaN gives NaN; a softmax row
with NaN is NaN). tests/test_nan_rule.py checks it on every ISA path.
"""
from __future__ import annotations

from . import _core

__all__: list[str] = ["matmul"]


# matmul is the compiled function itself: a Python wrapper forwarding keyword
# arguments would cost ~0.6 us per call, as much as a whole 32^3 product.
# Its docstring (nnforge.ops.matmul.__doc__) is set in csrc/bindings/bind_gemm.cpp.
matmul = _core.matmul


# bfloat16 conversions (matmul takes bf16 arrays and precision="bf16" itself).
from . import _lowp_ops  # noqa: E402
from ._lowp_ops import *  # noqa: E402,F401,F403

__all__ += _lowp_ops.__all__


# Training kernels other than GEMM (softmax, losses, activations, norms, dropout, ...).
from . import _nn_ops  # noqa: E402
from ._nn_ops import *  # noqa: E402,F401,F403

__all__ += _nn_ops.__all__


# Fused multi-tensor optimizer steps, gradient norm / clipping, STREAM triad.
from . import _optim_ops  # noqa: E402
from ._optim_ops import *  # noqa: E402,F401,F403

__all__ += _optim_ops.__all__


# 2-D convolution forward / backward (NCHW float32).
from . import _conv_ops  # noqa: E402
from ._conv_ops import *  # noqa: E402,F401,F403

__all__ += _conv_ops.__all__


# 2-D pooling (max with indices, average, global average) and their backwards.
from . import _pool_ops  # noqa: E402
from ._pool_ops import *  # noqa: E402,F401,F403

__all__ += _pool_ops.__all__


# Fused flash-style attention forward / backward (q, k, v as (B, H, L, D) views).
from . import _attention_ops  # noqa: E402
from ._attention_ops import *  # noqa: E402,F401,F403

__all__ += _attention_ops.__all__


# Fused LSTM / GRU / RNN layers with BPTT (x (T, B, I), PyTorch's weight layouts).
from . import _rnn_ops  # noqa: E402
from ._rnn_ops import *  # noqa: E402,F401,F403

__all__ += _rnn_ops.__all__


# Sparse (CSR) weight x dense activations for pruned Linear layers.
from . import _sparse_ops  # noqa: E402
from ._sparse_ops import *  # noqa: E402,F401,F403

__all__ += _sparse_ops.__all__

from . import _quant_ops  # noqa: E402
from ._quant_ops import *  # noqa: E402,F401,F403

__all__ += _quant_ops.__all__
