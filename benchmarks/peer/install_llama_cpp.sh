#!/usr/bin/env bash
# Installs llama.cpp for the peer benchmark and its test: the npm package node-llama-cpp and its prebuilt
# x86-64 Linux CPU backends, at the versions pinned in package.json / package-lock.json beside this
# script, into DIR (reused while the pinned version is what DIR holds). Only the npm registry is used;
# the CUDA and Vulkan builds (optional dependencies, ~600 MB) are left out, and so is the package's
# postinstall step (it would offer to build llama.cpp from source).
#   bash benchmarks/peer/install_llama_cpp.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$(realpath -m "$1")
command -v node >/dev/null && command -v npm >/dev/null || { echo "quantlab: error: node and npm are needed (scripts/install-deps.sh installs them)" >&2; exit 5; }
mkdir -p "$dir"
want=$(node -e 'console.log(require(process.argv[1]).dependencies["node-llama-cpp"])' "$here/package.json")
have=$(node -e 'try { console.log(require(process.argv[1]).version) } catch { console.log("") }' "$dir/node_modules/node-llama-cpp/package.json")
cp "$here/package.json" "$here/package-lock.json" "$here/llama_cpp_run.mjs" "$dir/"
if [ "$have" != "$want" ]; then
  echo "peer: installing node-llama-cpp $want into $dir" >&2
  (cd "$dir" && npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
fi
