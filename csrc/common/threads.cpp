#include "common/threads.h"

#include <omp.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>

namespace nnf {
namespace {

int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1, omp_get_num_procs());
}

// cgroup v2 "cpu.max" holds "<quota> <period>" or "max <period>".
int cgroup_cpus() {
  std::ifstream f("/sys/fs/cgroup/cpu.max");
  std::string quota;
  long long period = 0;
  if (f >> quota >> period && quota != "max" && period > 0) {
    long long q = std::atoll(quota.c_str());
    if (q > 0) return std::max(1, static_cast<int>(std::ceil(double(q) / double(period))));
  }
  return 1 << 30;
}

int env_threads() {
  const char* env = std::getenv("OMP_NUM_THREADS");
  if (!env || !*env) return 0;
  int n = std::atoi(env);  // "4,2" (nested list) -> 4
  return n > 0 ? n : 0;
}

std::atomic<int> g_threads{0};
std::atomic<bool> g_forked{false};

void on_fork_child() {
  g_forked.store(true);
  g_threads.store(1);
}

struct ForkHook {
  ForkHook() { pthread_atfork(nullptr, nullptr, on_fork_child); }
} g_fork_hook;

}  // namespace

int default_num_threads() {
  if (int n = env_threads()) return n;
  return std::max(1, std::min(affinity_cpus(), cgroup_cpus()));
}

int get_num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    n = default_num_threads();
    g_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) { g_threads.store(std::max(1, n), std::memory_order_relaxed); }

int threads_for(double work, double min_work_per_thread) {
  const int max_t = get_num_threads();
  if (max_t <= 1) return 1;
  const int by_work = static_cast<int>(work / min_work_per_thread);
  return std::max(1, std::min(max_t, by_work));
}

bool in_forked_child() { return g_forked.load(); }

}  // namespace nnf
