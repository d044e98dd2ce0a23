// Selectable GEMM micro-kernel variants (STYLE.md rule 7): benchmarks and tests
// force one by name; "auto" picks the preferred kernel of the best usable dispatch
// slot. NNFORGE_GEMM_VARIANT sets the initial choice. A forced variant applies only
// while its slot is usable and its ISA level is the active one (set_isa("generic")
// still means the generic path). Each variant registers itself, with its slot, its
// preference and its block sizes, in the file of its micro-kernel
// (NNF_REGISTER_GEMM_VARIANT, gemm_kernel.h; the table is common/variant_table.h).
//
// Variants ("auto" takes the first listed for the active slot):
//   generic_4x8     portable 4x8 kernel (auto-vectorised).
//   avx2_6x16e      v3: avx2_6x16p + exact-size edge tiles (R x 8 / R x 16, R = 1..6), A
//                   edge panels and 8-wide B edge panels read in place, and the C^T
//                   orientation taken when it pads < 0.75x (fc3 dW 128x128x10 ~40 -> ~57
//                   GF/s, 1 thread).
//   avx2_6x16p      v2: avx2_6x16 + prefetch of the C tile before the k loop, AVX2 8x8
//                   transposing packs (row-major A panels, column-major B panels).
//   avx2_6x16       v1: AVX2+FMA 6x16 kernel.
//   avx512_14x32k   v4: v3 with kc 512, mc 112, nc 1024 instead of 256, 168, 2048 (2 threads
//                   2048^3 175-198 -> 185-209 GF/s; sgemm_14x32e_avx512.cpp).
//   avx512_14x32t   v3: v2 + AVX-512 16x16 transposing packs (row-major A panels, column-
//                   major B panels such as W.T) instead of SSE 4x4 + scalar rows
//                   (128x128x10 x@W ~53 -> ~60 GF/s, 1 thread).
//   avx512_14x32e   v2: 14x32 plus exact-size edge tiles (R x 16 / R x 32, R = 1..14):
//                   no FMAs on padding rows/columns, A edge panels and 16-wide B edge
//                   panels read in place (128x128x10 ~60 -> ~87 GF/s, fc2 ~140 -> ~160+).
//   avx512_14x32    v1: 14x32 kernel, edge tiles zero-padded to 14x32.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nnf {

std::vector<std::string> gemm_variants();  // "auto" + every variant this CPU can run
std::string get_gemm_variant();
void set_gemm_variant(const std::string& name);  // std::invalid_argument if unknown/unsupported

// How a multi-threaded call runs its slabs (NNFORGE_GEMM_THREADING sets the initial one):
//   "pool"  v2 (default): common/worker_pool.h; slabs are claimed, so a thread whose core
//           another library's spinning pool holds does not stall the call (256^3 after
//           np.matmul: see `nnforge bench mixed`);
//   "omp"   v1: one OpenMP region, slab t on thread t; its closing barrier waits for
//           every thread, however late it is scheduled.
// The bf16 pair-kernel frame (gemm_bf16.cpp) follows the same switch.
// Same slabs, same arithmetic: results are bitwise identical either way.
// A variant's tile and block sizes {mr, nr, kc, mc, nc}. Variants with the same kc compute
// every element by the same FMA chain (bitwise equal results); a different kc splits the
// k loop elsewhere. std::invalid_argument for an unknown name.
std::vector<int64_t> gemm_variant_blocking(const std::string& name);

std::string get_gemm_threading();
bool gemm_threads_on_pool();  // the same, for the frames (sgemm, bf16) that branch on it
void set_gemm_threading(const std::string& name);  // std::invalid_argument unless pool / omp

}  // namespace nnf
