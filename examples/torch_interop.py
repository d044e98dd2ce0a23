"""A torch CPU tensor passes through nnforge.ops without a copy (DLPack).

The kernel reads the tensor's own memory (the data pointer it sees is t.data_ptr()),
and out= may be a torch tensor: the result is written straight into it.
"""
import numpy as np
import torch

from nnforge import _core, ops

a = torch.randn(256, 128)
b = torch.randn(512, 128).T                  # a transposed view: strides (1, 128), no copy
out = torch.empty(256, 512)

print("kernel sees a at", hex(_core._array_arg_info(a, "a")["data"]), " torch:", hex(a.data_ptr()))
print("kernel sees b at", hex(_core._array_arg_info(b, "b")["data"]), " torch:", hex(b.data_ptr()),
      " strides", _core._array_arg_info(b, "b")["strides"])
y = ops.matmul(a, b, out=out)                # returns a NumPy view of out's memory
ref = a.double() @ b.double()
print("result shares out's memory:", np.shares_memory(y, out.numpy()),
      " max error vs float64:", float((out.double() - ref).abs().max()))
