"""Arrays that are not NumPy arrays: DLPack CPU exporters (torch) and the buffer protocol.

Every nnforge.ops family takes them without a copy (the kernel's data pointer is the
tensor's, checked through _core._array_arg_info), writes out= tensors in place, returns
NumPy arrays and never converts a dtype. torch tests skip when torch is missing; the
buffer-protocol tests always run.
"""
import array

import numpy as np
import pytest

from nnforge import _core, ops

try:
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (DLPack tests need it)")


def info(obj, name="x"):
    return _core._array_arg_info(obj, name)


def randn_t(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float32)


# ---- what the kernel sees ----------------------------------------------------------------
@needs_torch
def test_kernel_sees_the_tensors_own_memory():
    t = randn_t(5, 7)
    d = info(t)
    assert d["data"] == t.data_ptr()
    assert d["dtype"] == "float32" and d["shape"] == (5, 7) and d["strides"] == (7, 1)
    assert d["device"] == "cpu:0" and d["writeable"] and d["c_contiguous"]
    v = t.T  # transposed view: same memory, strides in elements
    d = info(v)
    assert d["data"] == v.data_ptr() == t.data_ptr()
    assert d["shape"] == (7, 5) and d["strides"] == (1, 7) and not d["c_contiguous"]
    s = t[1:, ::2]  # offset and step: data points at element 0 of the view
    d = info(s)
    assert d["data"] == s.data_ptr() and d["strides"] == tuple(s.stride())


def test_kernel_sees_a_buffers_own_memory():
    buf = array.array("f", range(12))
    d = info(buf)
    assert d["data"] == buf.buffer_info()[0]
    assert d["dtype"] == "float32" and d["shape"] == (12,) and d["writeable"]
    ro = info(b"\x00" * 8)
    assert ro["dtype"] == "uint8" and not ro["writeable"]


def test_numpy_arrays_are_seen_as_they_are():
    a = np.zeros((4, 6), np.float64)[::2, 1:]
    d = info(a)
    assert d["data"] == a.ctypes.data and d["strides"] == (12, 1) and d["dtype"] == "float64"


def test_bfloat16_is_recognised_from_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes is not installed")
    d = info(np.zeros((2, 3), ml_dtypes.bfloat16))
    assert d["dtype"] == "bfloat16" and d["itemsize"] == 2 and d["strides"] == (3, 1)


# ---- GEMM --------------------------------------------------------------------------------
@needs_torch
def test_matmul_takes_tensors_and_writes_out_tensor_in_place():
    a, b = randn_t(6, 5, seed=1), randn_t(5, 4, seed=2)
    want = (a.double() @ b.double()).numpy()
    r = ops.matmul(a, b)
    assert isinstance(r, np.ndarray) and r.dtype == np.float32
    np.testing.assert_allclose(r, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.matmul(a.T.contiguous().T, b), want, rtol=1e-5, atol=1e-5)

    out = torch.full((6, 4), float("nan"))
    ptr = out.data_ptr()
    res = ops.matmul(a, b, out=out)
    assert isinstance(res, np.ndarray) and res.ctypes.data == ptr == out.data_ptr()
    assert info(out, "out")["data"] == ptr
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-5)

    out_t = torch.zeros(4, 6).T  # a transposed out view is written in place too
    ops.matmul(a, b, out=out_t)
    np.testing.assert_allclose(out_t.numpy(), want, rtol=1e-5, atol=1e-5)


@needs_torch
def test_matmul_out_tensor_overlapping_an_input_is_refused():
    a = randn_t(4, 4)
    before = a.clone()
    with pytest.raises(ValueError, match="overlaps a"):
        ops.matmul(a, a.clone(), out=a)
    assert torch.equal(a, before)


# ---- nn kernels --------------------------------------------------------------------------
@needs_torch
def test_nn_ops_take_tensors_and_out_tensors():
    x = randn_t(3, 8, seed=3)
    np.testing.assert_allclose(ops.relu(x), torch.relu(x).numpy())
    out = torch.empty(3, 8)
    r = ops.softmax(x, out=out)
    assert r.ctypes.data == out.data_ptr()
    np.testing.assert_allclose(out.numpy(), torch.softmax(x, -1).numpy(), rtol=1e-5, atol=1e-6)
    # along another axis (moved, computed, written back into the tensor)
    out0 = torch.empty(3, 8)
    ops.softmax(x, axis=0, out=out0)
    np.testing.assert_allclose(out0.numpy(), torch.softmax(x, 0).numpy(), rtol=1e-5, atol=1e-6)
    # a transposed input is copied to C order by the wrapper (never converted)
    np.testing.assert_allclose(ops.tanh(x.T), torch.tanh(x.T).numpy(), rtol=1e-5, atol=1e-6)
    labels = torch.tensor([1, 0, 7])
    loss = ops.cross_entropy(x, labels)
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(x, labels).item(), rel=1e-5)


@needs_torch
def test_relu_in_place_on_a_tensor():
    x = randn_t(100)
    want = torch.relu(x).numpy().copy()
    ops.relu(x, out=x)
    np.testing.assert_array_equal(x.numpy(), want)


# ---- optimizers --------------------------------------------------------------------------
@needs_torch
def test_sgd_step_updates_tensors_in_place():
    p, g = randn_t(10, seed=4), randn_t(10, seed=5)
    want = (p - 0.1 * g).numpy().copy()
    ptr = p.data_ptr()
    assert ops.sgd_step([p], [g], lr=0.1, step=1)
    assert p.data_ptr() == ptr
    np.testing.assert_allclose(p.numpy(), want, rtol=1e-6)
    assert ops.grad_norm([g]) == pytest.approx(float(torch.linalg.vector_norm(g.double())), rel=1e-6)


# ---- conv and pool -----------------------------------------------------------------------
@needs_torch
def test_conv2d_and_pooling_take_tensors():
    x, w, b = randn_t(2, 3, 9, 9, seed=6), randn_t(4, 3, 3, 3, seed=7), randn_t(4, seed=8)
    want = torch.nn.functional.conv2d(x, w, b, padding=1).numpy()
    np.testing.assert_allclose(ops.conv2d(x, w, b, padding=1), want, rtol=1e-4, atol=1e-4)
    out = torch.empty(2, 4, 9, 9)
    ops.conv2d(x, w, b, padding=1, out=out)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-4)
    y, idx = ops.max_pool2d(x, 2)
    ty, tidx = torch.nn.functional.max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    np.testing.assert_allclose(ops.global_avg_pool2d(x), x.mean((2, 3)).numpy(), rtol=1e-5, atol=1e-6)


# ---- refusals ----------------------------------------------------------------------------
@needs_torch
def test_requires_grad_tensor_is_refused_with_detach_hint():
    t = randn_t(3, 3).requires_grad_()
    with pytest.raises(TypeError, match=r"requires_grad=True; pass a\.detach\(\)"):
        ops.matmul(t, randn_t(3, 3))
    with pytest.raises(TypeError, match=r"detach"):
        ops.relu(t)


@needs_torch
def test_dtype_is_never_converted():
    with pytest.raises(TypeError, match="a must be float32 or bfloat16, got float64 with shape"):
        ops.matmul(randn_t(2, 2).double(), randn_t(2, 2))
    with pytest.raises(TypeError, match="out must be float32 or bfloat16, got float64"):
        ops.matmul(randn_t(2, 2), randn_t(2, 2), out=torch.zeros(2, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="labels must be int64 or int32, got float32"):
        ops.cross_entropy(randn_t(2, 3), torch.zeros(2))
    with pytest.raises(TypeError, match="bfloat16"):  # NumPy cannot view it: refused, not converted
        ops.relu(randn_t(4).bfloat16())


class _OnDevice:
    """A DLPack exporter that lives on another device (what a CUDA tensor reports)."""

    def __init__(self, dev_type, dev_id):
        self._dev = (dev_type, dev_id)

    def __dlpack_device__(self):
        return self._dev

    def __dlpack__(self, **kwargs):  # pragma: no cover - never reached: refused first
        raise AssertionError("a GPU array must not be exported to the CPU ops")


class _CudaInterface:
    __cuda_array_interface__ = {"shape": (2,), "typestr": "<f4", "data": (0, False), "version": 3}


def test_arrays_on_another_device_name_the_device():
    with pytest.raises(TypeError, match="a is a _OnDevice on device cuda:1"):
        ops.matmul(_OnDevice(2, 1), np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError, match="out is a _OnDevice on device rocm:0"):
        ops.relu(np.zeros(3, np.float32), out=_OnDevice(10, 0))
    with pytest.raises(TypeError, match="on a CUDA device"):
        ops.sgd_step([_CudaInterface()], [np.zeros(2, np.float32)], lr=0.1, step=1)


def test_buffers_in_and_out():
    x = array.array("f", [-1.0, 2.0, -3.0, 4.0])
    r = ops.relu(x)
    assert isinstance(r, np.ndarray) and r.tolist() == [0.0, 2.0, 0.0, 4.0]
    out = array.array("f", [9.0] * 4)
    res = ops.relu(x, out=memoryview(out))
    assert out.tolist() == [0.0, 2.0, 0.0, 4.0] and res.ctypes.data == out.buffer_info()[0]
    # read-only sources are refused as out=, and nothing is written
    ro = bytes(16)
    with pytest.raises(ValueError, match="out is read-only"):
        ops.relu(np.zeros(4, np.float32), out=memoryview(ro).cast("f"))
    assert ro == bytes(16)
    with pytest.raises(TypeError, match="must be float32, got uint8"):
        ops.relu(b"\x00\x01")
    with pytest.raises(TypeError, match="x must be a numpy.ndarray, a CPU tensor exporting DLPack"):
        ops.relu([1.0, 2.0])


def test_read_only_numpy_out_is_refused_through_every_family():
    ro = np.zeros((2, 2), np.float32)
    ro.flags.writeable = False
    a = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match="read-only"):
        ops.matmul(a, a, out=ro)
    with pytest.raises(ValueError, match="read-only"):
        ops.sgd_step([ro], [a], lr=0.1, step=1)
    assert not ro.any()
