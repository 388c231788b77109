// Summarises peer_bench.sh's results.jsonl: per width, mode and system the median and range of the
// runs, the decode's stall-free rate (1 / median time between tokens) and delivered rate (tokens /
// seconds), the fraction of the memory roofline (weight bytes per token / bandwidth probed beside the
// run), the bandwidth phase each run saw, and quantlab / llama.cpp ratios. Prints Markdown; writes
// RESULTS.summary.json beside the input.
//   node peer_summary.mjs DIR/results.jsonl
import { readFileSync, writeFileSync } from "node:fs";

const path = process.argv[2];
const runs = readFileSync(path, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
// The machines' bandwidth jumps between a low (~20-30 GB/s) and a high (~50-60 GB/s) level.
const phaseOf = (gbps) => (gbps < 40 ? "low" : "high");
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const stats = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

const groups = new Map();
for (const r of runs) {
  const bandwidth = Math.min(r.bandwidth_before, r.bandwidth_after);
  const key = `${r.width}|${r.mode}|${r.system}`;
  if (!groups.has(key)) groups.set(key, { width: r.width, mode: r.mode, system: r.system, rows: [] });
  const delivered = r.run.tokens_per_second;
  const stallFree = r.mode === "decode" ? 1 / r.run.median_token_seconds : delivered;
  groups.get(key).rows.push({
    delivered, stallFree, bandwidth, phase: phaseOf(bandwidth),
    roof: r.mode === "decode" ? (stallFree * r.weight_bytes) / (bandwidth * 1e9) : null,
  });
}

const summary = [];
for (const g of groups.values()) {
  const pick = (f) => stats(g.rows.map(f));
  summary.push({
    width: g.width, mode: g.mode, system: g.system, runs: g.rows.length,
    delivered: pick((r) => r.delivered), stall_free: pick((r) => r.stallFree),
    roofline_fraction: g.mode === "decode" ? pick((r) => r.roof) : null,
    bandwidth_gb_per_s: pick((r) => r.bandwidth), phases: [...new Set(g.rows.map((r) => r.phase))],
  });
}
const find = (w, m, s) => summary.find((x) => x.width === w && x.mode === m && x.system === s);
const fmt = (x, d = 1) => x.toFixed(d);
const range = (s, d = 1) => `${fmt(s.median, d)} (${fmt(s.min, d)}–${fmt(s.max, d)})`;

console.log(`\nCPU: ${runs[0]?.cpu}; ${runs.length} runs; tok/s median (range)\n`);
console.log("| width | mode | system | delivered tok/s | stall-free tok/s | roofline | bandwidth GB/s | phase |");
console.log("|---|---|---|---|---|---|---|---|");
for (const s of summary) {
  console.log(`| ${s.width} | ${s.mode} | ${s.system} | ${range(s.delivered)} | ${s.mode === "decode" ? range(s.stall_free) : "–"} | ` +
    `${s.roofline_fraction ? fmt(s.roofline_fraction.median, 2) : "–"} | ${range(s.bandwidth_gb_per_s)} | ${s.phases.join(", ")} |`);
}
console.log("\n| width | mode | system | / llama.cpp (delivered) | (stall-free) |");
console.log("|---|---|---|---|---|");
const ratios = [];
for (const w of ["f16", "8", "4"]) {
  for (const m of ["decode", "prefill"]) {
    for (const system of ["quantlab", "quantlab-int8", "quantlab-bf16"]) {
      const q = find(w, m, system), l = find(w, m, "llama.cpp");
      if (!q || !l) continue;
      const ratio = { width: w, mode: m, system, delivered: q.delivered.median / l.delivered.median,
                      stall_free: q.stall_free.median / l.stall_free.median };
      ratios.push(ratio);
      console.log(`| ${w} | ${m} | ${system} | ${fmt(ratio.delivered, 2)} | ${m === "decode" ? fmt(ratio.stall_free, 2) : "–"} |`);
    }
  }
}
writeFileSync(path.replace(/\.jsonl$/, "") + ".summary.json", JSON.stringify({ cpu: runs[0]?.cpu, summary, ratios }, null, 2));
