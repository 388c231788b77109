# Shell helpers shared by the benchmark scripts (sourced, not run).

# N fixed prompt token ids, comma-separated: ordinary vocabulary entries of a Qwen tokenizer (no special
# tokens), the same on every run and for every system compared.
prompt_ids() { awk -v n="$1" 'BEGIN { for (i = 0; i < n; ++i) printf "%s%d", (i ? "," : ""), 1000 + (i * 7919) % 140000 }'; }

# This machine's memory read bandwidth in GB/s now (`quantlab machine`): QUANTLAB THREADS.
probe_bandwidth() { "$1" machine --threads "$2" --json | awk -F': ' '/read_bandwidth/ { gsub(/[ ,]/, "", $2); print $2 }'; }

# The CPU's model name.
cpu_name() { awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo; }
