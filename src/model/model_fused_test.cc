// `fuse` output run through the engine: the qwen3-tiny base fused with its LoRA adapter (both formats)
// must give PEFT's merged logits (reference.safetensors `logits_merged`, made by transformers + PEFT).
#include <gtest/gtest.h>

#include "model/model.h"
#include "model/session.h"
#include "model/testing.h"
#include "quant/fuse.h"

namespace quantlab::model::testing {
namespace {

class FusedLogits : public ::testing::TestWithParam<const char*> {};

TEST_P(FusedLogits, MatchPeftMergedLogits) {
  TempDir tmp;
  quant::FuseOptions o;
  o.show_progress = false;
  o.dtype = DType::kF32;
  ThreadPool pool(2);
  quant::fuse_adapter(data_path("reference-models/qwen3-tiny"),
                      data_path(std::string("reference-models/qwen3-tiny-lora/") + GetParam()), tmp / "fused", o, pool);
  const io::SafetensorsFile ref(data_path("reference-models/qwen3-tiny-lora/reference.safetensors"));
  const auto ids = read_tensor<int32_t>(ref, "input_ids");
  const auto expected = read_tensor<float>(ref, "logits_merged");
  const Model model = Model::load(tmp / "fused");
  Session session(model, pool);
  const auto logits = session.forward(ids, /*all_logits=*/true);
  EXPECT_LE(max_abs_diff(logits, expected), 1e-4f);
  // And the fine-tune is visible: on the same ids the base model's logits are far from the merged ones.
  const Model base = Model::load(data_path("reference-models/qwen3-tiny"));
  Session base_session(base, pool);
  EXPECT_GT(max_abs_diff(base_session.forward(ids, true), expected), 1e-2f);
}

INSTANTIATE_TEST_SUITE_P(BothAdapterFormats, FusedLogits, ::testing::Values("peft-adapter", "mlx-adapter"));

}  // namespace
}  // namespace quantlab::model::testing
