// The conv kernels' dispatch stubs (declared in conv_kernels.h, filled by
// conv_direct_{generic,avx2,avx512}.cpp and conv_depthwise.per_isa.cpp).
#include "cpu/conv/conv_kernels.h"

namespace nnf {
namespace conv {

NNF_DEFINE_DISPATCH("conv", direct_geometry_stub);
NNF_DEFINE_DISPATCH("conv", direct_conv_stub);
NNF_DEFINE_DISPATCH("conv", direct_dw_stub);
NNF_DEFINE_DISPATCH("conv", depthwise_plane_stub);

}  // namespace conv
}  // namespace nnf
