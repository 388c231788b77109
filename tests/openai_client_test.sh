#!/usr/bin/env bash
# Compatibility with a client no one here wrote: the official OpenAI client library (npm `openai`,
# pinned in tests/openai-client/package.json) drives `quantlab serve` on the bundled fused model
# (tests/openai-client/client_test.mjs). The package is installed by this script into the build tree
# (npm's registry; nothing else is downloaded), and reused while its version stays the pinned one.
# Usage: tests/openai_client_test.sh QUANTLAB_BINARY WORK_DIR
set -euo pipefail
QUANTLAB=$1
WORK=$(realpath -m "$2")
SRC="$(cd "$(dirname "$0")" && pwd)"
MODEL="$SRC/data/tool-calling/dense-fused-strong-f16"
command -v node >/dev/null && command -v npm >/dev/null || { echo "openai client test: node and npm are needed (scripts/install-deps.sh installs them)"; exit 1; }
# openai 6 supports Node.js 20 and later (its README); Debian 12's own nodejs is 18.
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { echo "openai client test: Node.js >= 20 is needed (found $(node --version)); the npm package openai 6 does not support older ones"; exit 1; }
mkdir -p "$WORK"
cp "$SRC/openai-client/package.json" "$SRC/openai-client/package-lock.json" "$SRC/openai-client/client_test.mjs" "$WORK/"
want=$(node -e 'console.log(require(process.argv[1]).dependencies.openai)' "$WORK/package.json")
have=$(node -e 'try { console.log(require(process.argv[1]).version) } catch { console.log("") }' "$WORK/node_modules/openai/package.json")
if [ "$have" != "$want" ]; then
  (cd "$WORK" && npm ci --no-audit --no-fund --loglevel=error)
fi

export QUANTLAB_API_KEY="quantlab-test-$$"
"$QUANTLAB" serve "$MODEL" --port 0 --threads 2 --ctx 1024 >"$WORK/serve.out" 2>"$WORK/serve.err" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
port=""
for _ in $(seq 1 300); do
  port=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$WORK/serve.out" | grep -oE '[0-9]+$' || true)
  [ -n "$port" ] && break
  kill -0 $pid 2>/dev/null || { cat "$WORK/serve.err"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "quantlab serve did not start"; cat "$WORK/serve.err"; exit 1; }
status=0
(cd "$WORK" && node client_test.mjs "http://127.0.0.1:$port/v1" dense-fused-strong-f16 "$SRC/data/tool-calling/tools.json") || status=$?
kill -TERM $pid
wait $pid || { echo "quantlab serve exited with $? after SIGTERM"; status=1; }
trap - EXIT
exit $status
