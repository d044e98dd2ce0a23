// Size arithmetic that refuses to overflow, used before any pointer is formed.
#pragma once
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace nnf {

inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
    throw std::invalid_argument(std::string("size overflow computing ") + what + ": " +
                                std::to_string(a) + " * " + std::to_string(b));
  return r;
}

inline int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    throw std::invalid_argument(std::string("size overflow computing ") + what);
  return r;
}

}  // namespace nnf
