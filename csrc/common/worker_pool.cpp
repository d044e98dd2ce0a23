#include "common/worker_pool.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define NNF_HAS_MXCSR 1
#endif

namespace nnf {
namespace {

inline void cpu_relax() {
#ifdef NNF_HAS_MXCSR
  _mm_pause();
#endif
}

unsigned read_fp_state() {
#ifdef NNF_HAS_MXCSR
  return _mm_getcsr();
#else
  return 0;
#endif
}

void write_fp_state([[maybe_unused]] unsigned s) {
#ifdef NNF_HAS_MXCSR
  _mm_setcsr(s);
#endif
}

using Clock = std::chrono::steady_clock;

// The claim word holds the job's generation (bits 32-63), the next unclaimed chunk (16-31)
// and the chunk count (0-15), so one compare-exchange both checks that a chunk belongs to
// the current job and takes it: a worker that wakes after its job ended claims nothing.
constexpr uint64_t kNextOne = uint64_t(1) << 16;
constexpr int kMaxChunks = 0xffff;

inline uint32_t generation(uint64_t c) { return uint32_t(c >> 32); }

class Pool {
 public:
  explicit Pool(pid_t pid) : pid_(pid) {}
  pid_t pid() const { return pid_; }

  // false when the pool is busy (another caller, or a call from inside a chunk).
  bool run(int n, int threads, void* ctx, ChunkFn fn) {
    // A flag, not a mutex: a chunk that calls in again on the caller's thread must see
    // "busy" (try_lock on a mutex the thread holds is undefined).
    bool idle = false;
    if (!busy_.compare_exchange_strong(idle, true, std::memory_order_acquire)) return false;
    struct Release {
      std::atomic<bool>& flag;
      ~Release() { flag.store(false, std::memory_order_release); }
    } release{busy_};
    grow(std::min(threads, n) - 1);
    ctx_ = ctx;
    fn_ = fn;
    fp_state_ = read_fp_state();
    failed_.store(false, std::memory_order_relaxed);
    error_ = nullptr;
    pending_.store(n, std::memory_order_relaxed);
    const uint32_t gen = generation(claim_.load(std::memory_order_relaxed)) + 1;
    claim_.store((uint64_t(gen) << 32) | uint64_t(n), std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(sleep_mutex_);
      wake_.notify_all();
    }
    int chunk;
    while (claim(gen, &chunk)) run_one(chunk);
    // Only chunks a worker has claimed are left: wait for those, yielding the core if
    // the worker running one has been descheduled.
    const auto t0 = Clock::now();
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if ((spins & 255) == 255 && Clock::now() - t0 > std::chrono::microseconds(kSpinMicroseconds))
        std::this_thread::yield();
      else
        cpu_relax();
    }
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
    return true;
  }

 private:
  bool claim(uint32_t gen, int* chunk) {
    uint64_t c = claim_.load(std::memory_order_acquire);
    for (;;) {
      const int next = int((c >> 16) & kMaxChunks), n = int(c & kMaxChunks);
      if (generation(c) != gen || next >= n) return false;
      if (claim_.compare_exchange_weak(c, c + kNextOne, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
        *chunk = next;
        return true;
      }
    }
  }

  void run_one(int chunk) {
    if (!failed_.load(std::memory_order_relaxed)) {
      try {
        fn_(ctx_, chunk);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
        failed_.store(true, std::memory_order_relaxed);
      }
    }
    pending_.fetch_sub(1, std::memory_order_release);
  }

  void grow(int workers) {
    for (; workers_ < workers; ++workers_) {
      try {
        std::thread(&Pool::worker_loop, this).detach();
      } catch (const std::system_error&) {
        return;  // no more threads: the callers run the chunks
      }
    }
  }

  // Waits for a generation other than `seen`: spins kSpinMicroseconds, then sleeps.
  uint32_t wait_for_job(uint32_t seen) {
    auto t0 = Clock::now();
    for (int spins = 0;; ++spins) {
      const uint32_t gen = generation(claim_.load(std::memory_order_acquire));
      if (gen != seen) return gen;
      if ((spins & 255) == 255 && Clock::now() - t0 > std::chrono::microseconds(kSpinMicroseconds)) {
        std::unique_lock<std::mutex> lock(sleep_mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        wake_.wait(lock, [&] { return generation(claim_.load(std::memory_order_seq_cst)) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        t0 = Clock::now();
      }
      cpu_relax();
    }
  }

  void worker_loop() {
    uint32_t seen = 0;
    for (;;) {
      seen = wait_for_job(seen);
      int chunk;
      while (claim(seen, &chunk)) {
        // ctx_, fn_ and fp_state_ are the job's: the claim's acquire pairs with the caller's
        // store of the claim word, and the caller waits for this chunk before changing them.
        const unsigned mine = read_fp_state(), theirs = fp_state_;
        if (mine != theirs) write_fp_state(theirs);
        run_one(chunk);
        if (mine != theirs) write_fp_state(mine);
      }
    }
  }

  const pid_t pid_;
  std::atomic<bool> busy_{false};  // one call at a time; set by the caller for the whole call
  int workers_ = 0;                 // guarded by busy_
  std::atomic<uint64_t> claim_{0};
  std::atomic<int> pending_{0};  // chunks of the current job not yet finished
  void* ctx_ = nullptr;
  ChunkFn fn_ = nullptr;
  unsigned fp_state_ = 0;
  std::atomic<bool> failed_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;
  std::mutex sleep_mutex_;
  std::condition_variable wake_;
  std::atomic<int> sleepers_{0};
};

// One pool per process, never destroyed (its detached workers may be waiting on it at
// exit); a forked child, which has none of the parent's threads, makes its own.
Pool& this_process_pool() {
  static std::atomic<Pool*> pool{nullptr};
  const pid_t pid = getpid();
  Pool* cur = pool.load(std::memory_order_acquire);
  if (cur && cur->pid() == pid) return *cur;
  Pool* fresh = new Pool(pid);
  if (pool.compare_exchange_strong(cur, fresh, std::memory_order_acq_rel)) return *fresh;
  delete fresh;  // another thread installed one first
  return *cur;
}

}  // namespace

void run_chunks_erased(int nchunks, int threads, void* ctx, ChunkFn fn) {
  if (nchunks <= 0) return;
  if (threads > 1 && nchunks > 1 && nchunks <= kMaxChunks &&
      this_process_pool().run(nchunks, threads, ctx, fn))
    return;
  std::exception_ptr error;  // the serial path keeps the same contract
  for (int i = 0; i < nchunks && !error; ++i) {
    try {
      fn(ctx, i);
    } catch (...) {
      error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace nnf
