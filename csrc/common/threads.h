// Thread-count policy shared by every kernel.
//
// The default honours OMP_NUM_THREADS, the process's CPU affinity mask and a cgroup
// CPU quota, so a container limited to 2 CPUs does not oversubscribe. Kernels ask
// threads_for(work) so that small problems skip the fork-join entirely.
#pragma once
#include <cstdint>

namespace nnf {

int default_num_threads();
int get_num_threads();
void set_num_threads(int n);  // n >= 1, validated by the binding

// Threads worth using for `work` units of about one FLOP / byte each: 1 below
// `min_work_per_thread` per extra thread, never more than get_num_threads().
int threads_for(double work, double min_work_per_thread = 2.0e5);

// True in a process forked from one that had already run a parallel region. The
// child keeps working (libgomp's pool does not survive fork), serially unless the
// user calls set_num_threads again.
bool in_forked_child();

}  // namespace nnf
