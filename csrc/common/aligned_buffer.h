// Grow-only 64-byte-aligned scratch buffers, reused across calls so that hot
// paths (GEMM packing, im2col tiles) allocate nothing after warm-up.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>

namespace nnf {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(ptr_); }

  // Returns at least `count` floats; contents are unspecified. A size whose byte count
  // (rounded to pages) does not fit in size_t is std::bad_alloc, like a failed allocation.
  float* floats(size_t count) {
    if (count > kMaxBytes / sizeof(float)) throw std::bad_alloc();
    return static_cast<float*>(bytes(count * sizeof(float)));
  }

  void* bytes(size_t n) {
    if (n > kMaxBytes) throw std::bad_alloc();
    if (n > cap_) {
      std::free(ptr_);
      size_t rounded = (n + 4095) & ~size_t(4095);
      ptr_ = std::aligned_alloc(64, rounded);
      if (!ptr_) {
        cap_ = 0;
        throw std::bad_alloc();
      }
      cap_ = rounded;
    }
    return ptr_;
  }

 private:
  static constexpr size_t kMaxBytes = ~size_t(0) - 4095;  // rounding up to 4096 must not wrap
  void* ptr_ = nullptr;
  size_t cap_ = 0;
};

// One buffer per (thread, slot); slots let a kernel hold several at once.
// thread_local keeps OpenMP workers from sharing and needs no locking.
inline AlignedBuffer& thread_scratch(int slot) {
  static thread_local AlignedBuffer buffers[4];
  return buffers[slot & 3];
}

}  // namespace nnf
