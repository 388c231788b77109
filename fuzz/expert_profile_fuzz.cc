// An expert profile (experts.json, prune --profile) from a stranger: read, checked against the
// bundled MoE model it was recorded on, and used to choose experts, as `prune` does.
#include "analysis/expert_profile.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantlab;
  static const std::string model = fuzz::data_path("tool-calling/moe-fused-strong-f16");
  const auto& dir = fuzz::scratch();
  dir.clear();
  const std::string path = dir.write("experts.json", {reinterpret_cast<const char*>(data), size});
  fuzz::parses_or_refuses([&] {
    const analysis::ExpertProfile profile = analysis::read_profile(path);
    (void)analysis::used_expert_count(profile);
    (void)analysis::choose_experts(profile, 1, analysis::PruneRanking::kCount);
    analysis::check_profile_matches(profile, path, model);
    for (size_t keep : {size_t{1}, size_t{2}}) {
      (void)analysis::choose_experts(profile, keep, analysis::PruneRanking::kSaliency);
    }
  });
  return 0;
}
