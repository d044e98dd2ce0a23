// FTZ + DAZ for the current thread while in scope, restored afterwards. MXCSR is per
// thread, so every OpenMP worker of a kernel's region sets its own. Kernels whose values
// decay towards zero (exp of far-below-max scores, LSTM/GRU states) must not take the
// denormal microcode path (10-20x slower per operation).
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace nnf {

class FlushDenormals {
 public:
#if defined(__x86_64__) || defined(__i386__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved_); }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned saved_;
#endif
};

}  // namespace nnf
