// A thread pool whose caller never waits for a thread that has not started.
//
// run_chunks(n, threads, fn) runs fn(0) .. fn(n-1), each exactly once, on the caller and
// up to threads - 1 pool workers. Chunks are claimed, not assigned: a worker whose core
// is held by another library's spinning pool (OpenBLAS after a NumPy call, say) simply
// claims nothing, the caller runs what is left, and it waits only for chunks a worker
// has already begun. An OpenMP region instead ends in a barrier that waits for every
// team thread, so one descheduled thread stalls the call for a whole scheduler slice
// (`nnforge bench mixed`: 256^3 matmul after np.matmul ~0.17 ms -> 1.8-6 ms).
//
// Idle workers spin for kSpinMicroseconds after a chunk (long enough to bridge the
// Python between two calls), then sleep on a condition variable: they hold no core
// while the user's next NumPy call runs.
//
// Which thread runs a chunk never changes what it computes, so callers whose chunks do
// fixed work stay bitwise identical for any thread count. The caller's MXCSR (flush-to-
// zero, denormals-are-zero, rounding) is applied on the workers for the call.
// The first exception thrown by a chunk is rethrown in the caller after every claimed
// chunk finished; chunks not yet claimed are then skipped. A call made while the pool
// is busy (another thread's call, or a call from inside a chunk) runs all its chunks
// on its own thread. A forked child starts a fresh pool.
#pragma once
#include <type_traits>

namespace nnf {

constexpr int kSpinMicroseconds = 10;

// fn(ctx, chunk): the type-erased form run_chunks passes (no std::function allocation).
using ChunkFn = void (*)(void* ctx, int chunk);
void run_chunks_erased(int nchunks, int threads, void* ctx, ChunkFn fn);

template <class F>
void run_chunks(int nchunks, int threads, F&& fn) {
  run_chunks_erased(nchunks, threads, &fn, [](void* ctx, int chunk) {
    (*static_cast<std::remove_reference_t<F>*>(ctx))(chunk);
  });
}

}  // namespace nnf
