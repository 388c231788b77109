#include "text/jinja/jinja.h"

#include "core/error.h"
#include "text/jinja/lexer.h"
#include "text/jinja/parser.h"

namespace quantlab::text {

JinjaTemplate JinjaTemplate::parse(std::string_view source, std::string name) {
  auto program = std::make_shared<Program>();
  program->name = std::move(name);
  program->statements = jinja::parse_template(jinja::tokenize(source, program->name), program->name);
  JinjaTemplate t;
  t.program_ = std::move(program);
  return t;
}

std::string JinjaTemplate::render(const nlohmann::ordered_json& variables, const JinjaLimits& limits) const {
  if (!variables.is_object()) fail_input("{}: template variables must be a JSON object", program_->name);
  jinja::Value converted = jinja::Value::from_json(variables);
  return render(converted.as_dict(), limits);
}

std::string JinjaTemplate::render(const jinja::ValueDict& variables, const JinjaLimits& limits) const {
  return jinja::render_program(program_->statements, program_->name, variables, limits);
}

}  // namespace quantlab::text
