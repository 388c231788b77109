#!/usr/bin/env bash
# llama.cpp reads the GGUF files gguf_export writes as the weights quantlab runs: the bundled fused
# Qwen3 (float16) exported as F16 and run by llama.cpp (node-llama-cpp's prebuilt CPU backend) gives the
# same greedy continuation as `quantlab generate` on the safetensors; Q8_0 and Q4_0 files load and run.
# A wrong tensor name, shape order, hyperparameter or block layout changes the tokens or fails the load.
# x86-64 Linux only (the pinned prebuilt backend); elsewhere the test reports itself skipped (exit 77).
#   benchmarks/peer/gguf_llama_test.sh QUANTLAB GGUF_EXPORT WORK_DIR
set -euo pipefail
quantlab=$1 exporter=$2
work=$(realpath -m "$3")
here=$(cd "$(dirname "$0")" && pwd)
model="$here/../../tests/data/tool-calling/dense-fused-strong-f16"
[ "$(uname -sm)" = "Linux x86_64" ] || { echo "llama.cpp's prebuilt backend here is x86-64 Linux only: skipped"; exit 77; }
bash "$here/install_llama_cpp.sh" "$work/node"
ids=1,17,42,300,5,900,23,64
tokens=12
for type in f16 q8_0 q4_0; do
  "$exporter" "$model" "$work/$type.gguf" --type "$type" --tokenizer "$model/tokenizer.json" >/dev/null
done
ours=$("$quantlab" generate "$model" --ids "$ids" --max-tokens "$tokens" --ignore-eos --temperature 0 --threads 2 --json |
       node -e 'console.log(JSON.parse(require("fs").readFileSync(0)).tokens.join(","))')
theirs() {
  (cd "$work/node" && node llama_cpp_run.mjs "$work/$1.gguf" decode "$ids" 2 "$tokens") |
    node -e 'console.log(JSON.parse(require("fs").readFileSync(0)).generated.join(","))'
}
f16=$(theirs f16)
echo "quantlab (safetensors, float16): $ours"
echo "llama.cpp (F16 GGUF):            $f16"
[ "$ours" = "$f16" ] || { echo "FAIL: llama.cpp's continuation of the exported F16 file differs from quantlab's"; exit 1; }
for type in q8_0 q4_0; do
  got=$(theirs "$type")
  echo "llama.cpp (${type^^} GGUF):           $got"
  [ "$(echo "$got" | tr ',' '\n' | grep -c .)" -eq "$tokens" ] || { echo "FAIL: $type produced no continuation"; exit 1; }
done
echo "PASS"
