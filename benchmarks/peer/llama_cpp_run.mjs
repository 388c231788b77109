// One llama.cpp measurement for the same-run peer benchmark (peer_bench.sh copies this file next to its
// node_modules and runs it there). llama.cpp is node-llama-cpp's prebuilt CPU backend (pinned in
// peer_bench.sh); the model is a GGUF written by gguf_export from the weights quantlab runs.
//
//   node llama_cpp_run.mjs MODEL.gguf decode  IDS THREADS DECODE_TOKENS
//   node llama_cpp_run.mjs MODEL.gguf prefill IDS THREADS
// IDS: comma-separated prompt token ids (the same ones quantlab gets). Prints one JSON object:
//   load_seconds, and for decode: tokens, first_token_seconds, seconds (after the first token),
//   tokens_per_second (delivered), median_token_seconds, generated (the token ids); for prefill: tokens, seconds, tokens_per_second.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [modelPath, mode, idList, threadArg, decodeArg] = process.argv.slice(2);
if (!modelPath || !["decode", "prefill"].includes(mode) || !idList || !threadArg) {
  console.error("usage: node llama_cpp_run.mjs MODEL.gguf decode|prefill IDS THREADS [DECODE_TOKENS]");
  process.exit(2);
}
const ids = idList.split(",").map(Number);
const threads = Number(threadArg);
const decodeTokens = Number(decodeArg ?? 128);
const seconds = (from, to) => (to - from) / 1000;

const loadStart = performance.now();
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({
  contextSize: 1024, batchSize: 512, threads: { ideal: threads, min: threads }, sequences: 1,
});
const result = { load_seconds: seconds(loadStart, performance.now()), threads, system_info: llama.systemInfo };
const sequence = context.getSequence();

if (mode === "decode") {
  const times = [], generated = [];
  const start = performance.now();
  for await (const token of sequence.evaluate(ids, { temperature: 0 })) {
    times.push(performance.now());
    generated.push(token);
    if (times.length >= decodeTokens) break;
  }
  const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  Object.assign(result, {
    tokens: times.length,
    first_token_seconds: seconds(start, times[0]),
    seconds: seconds(times[0], times.at(-1)),
    tokens_per_second: (times.length - 1) / seconds(times[0], times.at(-1)),
    median_token_seconds: gaps[Math.floor(gaps.length / 2)] / 1000,
    generated,
  });
} else {
  const start = performance.now();
  await sequence.evaluateWithoutGeneratingNewTokens(ids);
  const elapsed = seconds(start, performance.now());
  Object.assign(result, { tokens: ids.length, seconds: elapsed, tokens_per_second: ids.length / elapsed });
}
console.log(JSON.stringify(result));
await context.dispose();
await model.dispose();
await llama.dispose();
