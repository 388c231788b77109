#include "kernels/targets.h"

#include "kernels/highway_config.h"  // must precede the hwy includes

#include "hwy/targets.h"

namespace quantlab::kernels {

std::vector<int64_t> compiled_targets() { return hwy::SupportedAndGeneratedTargets(); }

void force_target(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

const char* target_name(int64_t target) { return hwy::TargetName(target); }

}  // namespace quantlab::kernels
