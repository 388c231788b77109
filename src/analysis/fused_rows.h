// Rows of a base model and of its fine-tuned (fused) version side by side, for analyses that compare
// the two tensor by tensor without writing the fused model: either read from a fused checkpoint, or
// made in memory from the base and a LoRA adapter (W + scale·B·A, rounded to the base's dtype as
// `quantlab fuse` writes it).
//
// Thread-safety: immutable after construction; read() may run concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/adapter.h"
#include "io/safetensors.h"
#include "quant/rounding.h"

namespace quantlab::analysis {

class FusedRows {
 public:
  // Every adapter module must land on a base tensor of the right shape (Error naming the module).
  static FusedRows from_adapter(const io::ModelWeights& base, io::Adapter adapter);
  // The fused checkpoint must hold every float tensor of the base with the same shape (Error naming
  // the tensor).
  static FusedRows from_fused(const io::ModelWeights& base, const io::ModelWeights& fused);

  // False when the tensor is certainly identical in both (not targeted by the adapter).
  bool may_differ(const std::string& source) const;

  // Rows [r0, r1) of the source tensor `name` ([rows, cols] when flattened), as f32: base as stored,
  // fused as stored (or as fuse would store it). Returns false, leaving `fused` unspecified, when the
  // rows are bit-identical in both.
  bool read(const std::string& name, int64_t r0, int64_t r1, int64_t cols, std::vector<float>& base,
            std::vector<float>& fused) const;

  // From an adapter only: rows [r0, r1) of the exact change scale·B·A of tensor `name` (not rounded to
  // any dtype; zero where the adapter does not reach). Returns false when the adapter does not touch
  // these rows.
  bool adapter_delta(const std::string& name, int64_t r0, int64_t r1, int64_t cols, std::vector<float>& delta) const;

 private:
  // One adapter module (one expert of it) applied to rows [row_offset, row_offset + rows).
  struct Edit {
    size_t module;  // index into adapter_->modules
    int64_t expert, row_offset, rows;
  };
  FusedRows(const io::ModelWeights& base, const io::ModelWeights* fused) : base_(&base), fused_(fused) {}
  void resolve_adapter();
  void read_f32(const io::ModelWeights& w, const std::string& name, int64_t first, int64_t n,
                std::vector<float>& out) const;

  const io::ModelWeights* base_;
  const io::ModelWeights* fused_ = nullptr;
  std::optional<io::Adapter> adapter_;
  std::map<std::string, std::vector<Edit>> edits_;  // by base tensor name
};

// ΔWᵀΔW ([cols, cols]) of each source tensor of the model in `model_dir` (the fused model being
// quantized), from a LoRA adapter's exact scale·B·A: delta rounding without the base model
// (quant::RoundingOptions::delta_gram). The adapter is checked against the model now (Error naming the
// module); a tensor the adapter does not reach gets zeros.
std::function<std::vector<double>(const std::string& source, int64_t cols)> adapter_delta_gram(
    const std::string& model_dir, const std::string& adapter_dir);

// Where delta rounding of the model in `model_dir` reads the fine-tune's change: fused − `base_dir`, or
// the adapter's exact scale·B·A when `adapter_dir` is given (then checked against the model now).
void set_delta_source(quant::RoundingOptions& rounding, const std::string& model_dir, const std::string& base_dir,
                      const std::string& adapter_dir);

}  // namespace quantlab::analysis
