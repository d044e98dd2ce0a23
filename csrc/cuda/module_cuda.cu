// nnforge._cuda: the optional CUDA module. Built only when CMake finds nvcc; the
// CPU module never links the CUDA runtime. Nothing here touches CUDA at import:
// the runtime initialises on the first call that needs a device.
#include <cuda_runtime.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

namespace py = pybind11;

namespace {

// No driver, no device, or a driver too old all mean "no usable device": 0, never an abort.
int device_count() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later queries start clean
    return 0;
  }
  return n;
}

std::string runtime_error_string() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  cudaGetLastError();
  return err == cudaSuccess ? "ok" : cudaGetErrorString(err);
}

py::dict device_properties(int index) {
  int n = device_count();
  if (index < 0 || index >= n)
    throw py::value_error("CUDA device index " + std::to_string(index) + " out of range (" +
                          std::to_string(n) + " devices)");
  cudaDeviceProp p{};
  cudaGetDeviceProperties(&p, index);
  py::dict d;
  d["name"] = std::string(p.name);
  d["compute_capability"] = py::make_tuple(p.major, p.minor);
  d["total_memory"] = static_cast<size_t>(p.totalGlobalMem);
  d["multiprocessors"] = p.multiProcessorCount;
  return d;
}

// out = a + b on the device: the smoke kernel that proves the toolchain,
// architectures and runtime work end to end.
__global__ void add_kernel(const float* a, const float* b, float* out, long long n) {
  long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

py::array_t<float> smoke_add(py::array_t<float, py::array::c_style> a, py::array_t<float, py::array::c_style> b) {
  if (a.ndim() != 1 || b.ndim() != 1 || a.shape(0) != b.shape(0))
    throw py::value_error("smoke_add expects two 1-D float32 arrays of equal length");
  if (device_count() == 0) throw std::runtime_error("no CUDA device available");
  const long long n = a.shape(0);
  py::array_t<float> out(n);
  float *da = nullptr, *db = nullptr, *dout = nullptr;
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  try {
    check(cudaMalloc(&da, bytes ? bytes : 4), "cudaMalloc");
    check(cudaMalloc(&db, bytes ? bytes : 4), "cudaMalloc");
    check(cudaMalloc(&dout, bytes ? bytes : 4), "cudaMalloc");
    check(cudaMemcpy(da, a.data(), bytes, cudaMemcpyHostToDevice), "copy a");
    check(cudaMemcpy(db, b.data(), bytes, cudaMemcpyHostToDevice), "copy b");
    if (n > 0) {
      const int block = 256;
      add_kernel<<<static_cast<unsigned>((n + block - 1) / block), block>>>(da, db, dout, n);
      check(cudaGetLastError(), "add_kernel launch");
    }
    check(cudaMemcpy(out.mutable_data(), dout, bytes, cudaMemcpyDeviceToHost), "copy out");
  } catch (...) {
    cudaFree(da); cudaFree(db); cudaFree(dout);
    throw;
  }
  cudaFree(da); cudaFree(db); cudaFree(dout);
  return out;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "nnforge CUDA kernels (private; use nnforge.cuda)";
  m.def("device_count", &device_count);
  m.def("runtime_status", &runtime_error_string);
  m.def("device_properties", &device_properties, py::arg("index") = 0);
  m.def("runtime_version", [] { int v = 0; cudaRuntimeGetVersion(&v); return v; });
  m.def("smoke_add", &smoke_add, py::arg("a"), py::arg("b"));
}
