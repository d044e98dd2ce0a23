// Exceptions out of OpenMP regions.
//
// An exception that leaves a `#pragma omp parallel` region calls std::terminate (the
// process aborts), and every thread of a region may throw: std::bad_alloc when it grows
// its scratch (aligned_buffer.h), invalid_argument from checked size arithmetic. Each
// piece of work in a region runs through ParallelErrors::run, which keeps the first
// exception (and skips the work left once one was thrown); after the region the caller
// calls rethrow(), and the binding turns it into MemoryError / ValueError.
//
//   ParallelErrors errors;
//   #pragma omp parallel for num_threads(nt)
//   for (int64_t i = 0; i < n; ++i) errors.run([&] { body(i); });
//   errors.rethrow();
#pragma once
#include <atomic>
#include <exception>
#include <mutex>

namespace nnf {

class ParallelErrors {
 public:
  template <class F>
  void run(F&& work) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;  // the call fails anyway
    try {
      work();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }

  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr error_;
};

}  // namespace nnf
