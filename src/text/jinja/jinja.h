// A Jinja2 template engine for model chat templates: parse once, render many times.
// Covers what real chat templates (Qwen2.5/3, Llama 3.x, Mistral) use, with transformers'
// environment: trim_blocks + lstrip_blocks, loop controls, `tojson` without ASCII escaping, and
// `raise_exception`. Syntax and runtime errors throw quantlab::Error naming the template, line and
// column; rendering is bounded in steps, output size and nesting.
//
// Thread-safety: a parsed JinjaTemplate is immutable; render() may run concurrently.
#pragma once

#include "text/jinja/interpreter.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace quantlab::text {

using JinjaLimits = jinja::RenderLimits;

class JinjaTemplate {
 public:
  // `name` appears in error messages (for example the path of tokenizer_config.json).
  static JinjaTemplate parse(std::string_view source, std::string name = "template");

  // `variables` must be a JSON object; its members become template globals.
  std::string render(const nlohmann::ordered_json& variables, const JinjaLimits& limits = {}) const;
  // Same, with values already converted (lets callers add values JSON cannot express).
  std::string render(const jinja::ValueDict& variables, const JinjaLimits& limits = {}) const;

  const std::string& name() const { return program_->name; }

 private:
  struct Program {
    std::string name;
    jinja::StmtList statements;
  };
  std::shared_ptr<const Program> program_;
};

}  // namespace quantlab::text
