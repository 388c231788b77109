// quantlab tokenize DIR (--text TEXT | --file TEXTS.jsonl | --decode 1,2,3) [--json]
// quantlab chat-template DIR --messages FILE.json [--tools FILE.json] [--no-thinking] [--generation-prompt]
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/token_ids.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace quantlab::cli {

namespace {

using ojson = nlohmann::ordered_json;

struct TokenizeArgs {
  std::string dir, text, file, decode;
  bool json = false, skip_special = false;
};

void print_ids(const std::vector<int32_t>& ids, bool json) {
  if (json) fmt::print("{}\n", ojson(ids).dump());
  else fmt::print("{}\n", fmt::join(ids, " "));
}

// One JSON string per input line, one JSON result per output line, so large corpora stream through.
void tokenize_file(const text::Tokenizer& tok, const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(ErrorKind::kIo, "{}: cannot open", path);
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ojson j;
    try {
      j = ojson::parse(line);
    } catch (const ojson::exception& e) {  // bad syntax, and numbers beyond a double (406)
      fail_input("{}:{}: not valid JSON: {}", path, n, e.what());
    }
    if (!j.is_string()) fail_input("{}:{}: each line must be one JSON string", path, n);
    fmt::print("{}\n", ojson{{"ids", tok.encode(j.get<std::string>())}}.dump());
  }
}

void run_tokenize(const TokenizeArgs& a) {
  const int given = !a.text.empty() + !a.file.empty() + !a.decode.empty();
  if (given != 1) fail(ErrorKind::kUsage, "give exactly one of --text, --file and --decode");
  const text::Tokenizer tok = text::Tokenizer::from_file(a.dir);
  if (!a.file.empty()) return tokenize_file(tok, a.file);
  if (!a.decode.empty()) {
    const auto ids = parse_token_ids(a.decode, "--decode");
    const std::string s = tok.decode(ids, a.skip_special);
    if (a.json) fmt::print("{}\n", ojson{{"text", s}}.dump());
    else fmt::print("{}\n", s);
    return;
  }
  print_ids(tok.encode(a.text), a.json);
}

ojson read_json_file(const std::string& path, const char* what) {
  try {
    return ojson::parse(read_text_file(path));
  } catch (const ojson::exception& e) {  // bad syntax, and numbers beyond a double (406)
    fail_input("{}: {} is not valid JSON: {}", path, what, e.what());
  }
}

struct TemplateArgs {
  std::string dir, messages, tools;
  bool no_thinking = false, generation_prompt = false, json = false;
};

void run_chat_template(const TemplateArgs& a) {
  text::ChatRequest req;
  req.messages = read_json_file(a.messages, "--messages");
  if (req.messages.is_object() && req.messages.contains("messages")) req.messages = req.messages["messages"];
  if (!req.messages.is_array()) fail_input("{}: expected a JSON list of messages", a.messages);
  if (!a.tools.empty()) req.tools = read_json_file(a.tools, "--tools");
  req.add_generation_prompt = a.generation_prompt;
  if (a.no_thinking) req.extra["enable_thinking"] = false;
  const std::string prompt = text::ChatTemplate::from_model_dir(a.dir).render(req);
  if (!a.json) {
    fmt::print("{}", prompt);
    return;
  }
  const text::Tokenizer tok = text::Tokenizer::from_file(a.dir);
  fmt::print("{}\n", ojson{{"text", prompt}, {"ids", tok.encode(prompt)}}.dump());
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  auto* cmd = app.add_subcommand("tokenize", "Encode text with a model's tokenizer.json, or decode ids");
  cmd->add_option("dir", a->dir, "Model directory (or a tokenizer.json file)")->required();
  cmd->add_option("--text", a->text, "Text to encode");
  cmd->add_option("--file", a->file, "JSON lines, one string each; prints one {\"ids\": [...]} per line");
  cmd->add_option("--decode", a->decode, "Comma-separated ids to turn back into text");
  cmd->add_flag("--skip-special", a->skip_special, "With --decode: drop special tokens");
  cmd->add_flag("--json", a->json, "JSON output");
  cmd->callback([a] { run_tokenize(*a); });
}

void register_chat_template(CLI::App& app) {
  auto a = std::make_shared<TemplateArgs>();
  auto* cmd = app.add_subcommand("chat-template", "Render a model's chat template for a conversation");
  cmd->add_option("dir", a->dir, "Model directory (tokenizer_config.json or chat_template.jinja)")->required();
  cmd->add_option("--messages", a->messages, "JSON list of {role, content, ...} messages")->required();
  cmd->add_option("--tools", a->tools, "JSON list of tool schemas");
  cmd->add_flag("--no-thinking", a->no_thinking, "enable_thinking=false (Qwen3: an empty think block)");
  cmd->add_flag("--generation-prompt", a->generation_prompt, "End with the assistant turn's opening");
  cmd->add_flag("--json", a->json, "Print {\"text\", \"ids\"} (ids from the model's tokenizer)");
  cmd->callback([a] { run_chat_template(*a); });
}

}  // namespace quantlab::cli
