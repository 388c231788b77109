// A query suite's prompts as the models see them: each query's messages rendered by the model's chat
// template (the tools in, thinking off) and encoded. Calibration and expert profiles run these.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "chat/chat_model.h"

namespace quantlab::analysis {

// Empty when suite_path is empty. Throws Error naming the file and line on a bad suite or tools file.
std::vector<std::vector<int32_t>> encode_suite_prompts(const std::string& suite_path, const std::string& tools_path,
                                                       const chat::ChatModel& chat);

// Plain text encoded and cut into chunks of `chunk` tokens (the last one shorter). Empty when path is
// empty; Error(kInvalidInput) naming the file when it has no tokens.
std::vector<std::vector<int32_t>> encode_text_chunks(const std::string& path, size_t chunk,
                                                     const chat::ChatModel& chat);

}  // namespace quantlab::analysis
