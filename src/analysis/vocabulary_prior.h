// The vocabulary prior of layer 0's attention inputs (docs/rounding.md, "The vocabulary prior").
//
// q/k/v of the first layer read the normed embedding row of each token: their inputs are a lookup, one
// fixed vector per vocabulary entry. A calibration suite reaches a few hundred distinct tokens (the
// bundled tool-calling half of dev40: 206 of 1 088, most of its 6 930 tokens the one repeated system
// prompt), so E[x xᵀ] describes those rows only, and GPTQ sends the first layer's rounding error into
// the directions where every other token's row lies — and where a rounded embedding's own error lies.
// The rows are known without running anything, so the second moments of the whole vocabulary (every row
// equally likely, normed as the engine norms them) are mixed in:
//   H₀ = (1 − w)·H_calibration + w·H_vocabulary,   w = RoundingOptions::vocab_prior (`--vocab-prior`),
// 0 by default: measured, it helps the bundled MoE and costs the dense fine-tunes (docs/rounding.md).
#pragma once

#include <string>

#include "core/thread_pool.h"
#include "quant/rounding.h"

namespace quantlab::analysis {

// Rows of the embedding table read for the prior: evenly spaced when the vocabulary is larger (a
// uniform sample of the table; E[x xᵀ] of a 2 048-wide model needs a few thousand rows, not 152 K).
constexpr size_t kVocabularyPriorRows = 16384;

// E[x xᵀ] ([hidden, hidden]) of layer 0's attention input over the vocabulary of the float checkpoint
// in `model_dir`. Throws Error(kInvalidInput) naming the tensor when the embedding or the norm is not
// a float tensor of the config's shape.
std::vector<double> vocabulary_moments(const std::string& model_dir, ThreadPool& pool);

// Sets r.vocabulary_moments for layer 0's q/k/v (when r.vocab_prior > 0 and they are not set yet).
void add_vocabulary_prior(quant::RoundingOptions& r, const std::string& model_dir, ThreadPool& pool);

}  // namespace quantlab::analysis
