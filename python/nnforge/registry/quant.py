"""INT8: qgemm_s32 (the exact u8 x s8 -> s32 GEMM every int8 op runs on).

Reference: the int64 NumPy matmul, tolerance 0 (integer sums are exact). OPs: 2*M*N*K;
bytes: a and b once (1 B each), c once (4 B). The float-facing ops (quantize,
dequantize, quantize_weight, qlinear, qconv2d) have their float64 / quantisation-aware
references in tests/test_int8.py, on every ISA path.
"""
from __future__ import annotations

import numpy as np

from ._base import Op


def _ref(a, b):
    return a.astype(np.int64) @ b.astype(np.int64)


def _flops(p):
    return 2.0 * p["m"] * p["n"] * p["k"]


def _bytes(p):
    return float(p["m"] * p["k"] + p["k"] * p["n"] + 4 * p["m"] * p["n"])


def _case(op, m, k, n, transposed=False):
    def make(rng):
        a = rng.integers(0, 256, (m, k), dtype=np.uint8)
        b = rng.integers(-128, 128, (n, k) if transposed else (k, n), dtype=np.int8)
        return (a, b.T if transposed else b), {}
    return op.case(f"{m}x{k}x{n}{' b.T' if transposed else ''}", make, m=m, n=n, k=k)


def _cases(op):
    return [_case(op, 1, 1, 1), _case(op, 13, 31, 33), _case(op, 97, 130, 65, transposed=True),
            _case(op, 512, 512, 512)]


_TESTED = "tests/test_int8.py (quantisation-aware NumPy reference, every ISA path)"


def register(add):
    from nnforge import ops
    add(Op("qgemm_s32", "quant", ops.qgemm_s32, _ref, _flops, _bytes, _cases, lambda c, a, r: 0,
           covers={name: _TESTED for name in ("QuantizedWeight", "dequantize", "qconv2d", "qlinear", "quantize",
                                              "quantize_conv_weight", "quantize_weight")},
           shape_free=(1,)))  # b (K, N): a wider b is a bigger N, not an error
