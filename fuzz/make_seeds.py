#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs (fuzz/seeds/<target>/) from tests/data: small, valid examples of
every format, so that the fuzzers start from inputs that reach deep into each parser. Run once when a
format changes; the output is committed (docs/fuzzing.md). Python's standard library only."""
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
OUT = ROOT / "fuzz" / "seeds"
RS = b"\x1e"  # separates the files of a multi-file input (fuzz_support.h)


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, offset, blob = {}, 0, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blob += data
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + blob


def read_safetensors(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    out = []
    for name, info in header.items():
        a, b = info["data_offsets"]
        out.append((name, info["dtype"], info["shape"], raw[8 + n + a:8 + n + b]))
    return out, meta


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def adapter_seed(kind, folder, tensor_file, modules=1):
    """The adapter's config and the tensors of its first `modules` modules (two tensors each)."""
    tensors, meta = read_safetensors(folder / tensor_file)
    kept = tensors[:2 * modules]
    config = (folder / "adapter_config.json").read_bytes()
    return kind + config + RS + safetensors(kept, meta)


def main():
    f32 = lambda *v: struct.pack(f"<{len(v)}f", *v)
    write("safetensors", "two_tensors", safetensors(
        [("model.norm.weight", "F32", [2], f32(1, 2)), ("lm_head.weight", "BF16", [2, 2], b"\x80\x3f" * 4)],
        {"format": "mlx"}))
    write("safetensors", "quantized", safetensors(
        [("w.weight", "U32", [2, 1], b"\x01\x00\x00\x00" * 2), ("w.scales", "F16", [2, 1], b"\x00\x3c" * 2),
         ("w.biases", "F16", [2, 1], b"\x00\x00" * 2)]))
    write("safetensors", "empty_header", struct.pack("<Q", 2) + b"{}")

    index = {"metadata": {"total_size": 16}, "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "model.norm.weight": "model-00002-of-00002.safetensors"}}
    write("shard_index", "valid.json", json.dumps(index))
    index["weight_map"]["model.norm.weight"] = "../model-00002-of-00002.safetensors"
    write("shard_index", "outside.json", json.dumps(index))

    for cfg in sorted(DATA.glob("reference-models/*/config.json")) + [DATA / "configs/qwen3-30b-a3b/config.json"]:
        write("model_config", cfg.parent.name + ".json", cfg.read_bytes())
    quantized = json.loads((DATA / "reference-models/qwen3moe-tiny/config.json").read_text())
    quantized["quantization"] = {"group_size": 64, "bits": 4, "mode": "affine",
                                 "model.layers.0.mlp.gate": {"group_size": 64, "bits": 8},
                                 "model.layers.0.self_attn.q_proj": False}
    quantized["quantization_config"] = quantized["quantization"]
    write("model_config", "quantized_moe.json", json.dumps(quantized))

    lora = DATA / "reference-models/qwen3-tiny-lora"
    write("adapter", "peft", adapter_seed(b"P", lora / "peft-adapter", "adapter_model.safetensors"))
    write("adapter", "mlx", adapter_seed(b"M", lora / "mlx-adapter", "adapters.safetensors"))
    write("adapter", "peft_moe", adapter_seed(b"P", DATA / "tool-calling/moe-lora-strong", "adapter_model.safetensors"))

    write("tokenizer_load", "tool_calling.json", (DATA / "tool-calling/tokenizer.json").read_bytes())

    for i, text in enumerate(["Hello, world!", "  indented\n\n\ttabs 123 4567",
                              "<|im_start|>user\nWetter in Köln? 你好<|im_end|>", "caf\u0065\u0301 \U0001F600"]):
        write("tokenizer_encode", f"text{i}", text.encode() + RS + struct.pack("<4i", 0, 1, 151643, 9999))

    messages = json.dumps([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Paris?"}]).encode()
    tools = (DATA / "tool-calling/tools.json").read_bytes()
    qwen3 = json.loads((DATA / "tool-calling/tokenizer_config.json").read_text())["chat_template"]
    write("chat_template", "qwen3", qwen3.encode() + RS + messages + RS + tools)
    for name in ["llama3.1-reconstructed.jinja", "mistral-v0.3-reconstructed.jinja"]:
        write("chat_template", name, (DATA / "templates" / name).read_bytes() + RS + messages + RS + tools)
    write("chat_template", "macros", b"{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
          b"{{ f(3) }}{% for m in messages %}{{ m.role | upper }}{{ loop.index }}{% endfor %}"
          b"{% set ns = namespace(x=0) %}{{ tools | tojson }}{{ 'a,b'.split(',') | join('-') }}" + RS + messages)

    for i, reply in enumerate([
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
            "<think>\nThe user wants a fact.\n</think>\n\nParis is the capital.",
            '<think></think><tool_call>{"name": "x", "arguments": "{\\"a\\": 1}"}</tool_call>'
            '<tool_call>{"name": broken}</tool_call> trailing',
            "reasoning only</think>answer"]):
        write("tool_calls", f"reply{i}", reply)

    suite = (DATA / "tool-calling/queries/seed5.jsonl").read_bytes()
    write("suite", "seed5", suite + RS + tools)

    criteria = (ROOT / "docs/criteria.md").read_text().split("```toml\n")[1].split("```")[0]
    write("criteria", "defaults.toml", criteria)
    write("criteria", "partial.toml", "[optimal]\nspeed_ratio = 1.5\n[minimum_viable]\ndisk_smaller_pct = 10.5\n")

    write("plan_file", "mixed.json", json.dumps({
        "format": "quantlab.plan/1", "bits": 4, "group_size": 64,
        "modules": {"model.layers.0.self_attn.q_proj": {"bits": 8, "group_size": 32},
                    "model.layers.0.mlp.switch_mlp.down_proj": {"bits": 6, "group_size": 64},
                    "lm_head": False}}))
    write("plan_file", "uniform.json", json.dumps({"format": "quantlab.plan/1", "bits": 3, "group_size": 128}))

    # The expert profile seed (recorded.json) is a real `quantlab experts` output, minified:
    #   quantlab experts tests/data/tool-calling/moe-fused-strong-f16 --suite .../seed5.jsonl --out DIR

if __name__ == "__main__":
    main()
