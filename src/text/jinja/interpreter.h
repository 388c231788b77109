// Tree-walking renderer for parsed Jinja templates. Scoping follows Jinja2: a `set` inside a for
// loop or macro body is local to it (templates use namespace() to carry values out), a `set` inside
// `if` is not. Every statement and loop iteration costs one step; steps, output size and
// evaluation depth are bounded so hostile templates fail with an error instead of hanging.
#pragma once

#include "text/jinja/ast.h"
#include "text/jinja/builtins.h"

#include <cstdint>
#include <string>

namespace quantlab::text::jinja {

struct RenderLimits {
  size_t max_output_bytes = kMaxStringBytes;
  uint64_t max_steps = 2'000'000;  // real chat templates need ~100 per message
  int max_depth = 1000;       // nested expression/statement evaluations, macro calls included
  int max_macro_depth = 64;   // nested macro calls
};

// Renders `program` with `variables` visible as globals (on top of the builtin functions).
// Errors throw quantlab::Error "<template_name>:<line>:<column>: <message>".
std::string render_program(const StmtList& program, const std::string& template_name, const ValueDict& variables,
                           const RenderLimits& limits);

}  // namespace quantlab::text::jinja
