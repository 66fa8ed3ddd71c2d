#!/usr/bin/env bash
# CATS against the full model alone, interleaved with full measured twice (full, cats, full): the first
# 10 prompts of GSM8K-CoT and CSQA, density 0.5 and 0.4, one and two threads, fast numerics; one JSON per
# run in benchmarks/results/cats-T-dD-tN.json (or OUT_DIR), which benchmarks/render-readme.py turns into
# one table; a second run into OUT_DIR=benchmarks/results/repeat adds a column.
# Usage: [OUT_DIR=DIR] benchmarks/cats-vs-full.sh [PROMPTS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
dir=${OUT_DIR:-benchmarks/results}
mkdir -p "$dir"
sw=.build/release/sirius-worker
[ -x "$sw" ] || swift build -c release --product sirius-worker
for task in gsm8k-cot csqa; do
  for density in 0.5 0.4; do
    for threads in 1 2; do
      out=$dir/cats-$task-d$density-t$threads.json
      echo "== $task density $density, $threads thread(s) → $out" >&2
      "$sw" bench --methods full,cats,full --task "$task" --limit "$n" --density "$density" -t "$threads" --numerics fast -o json > "$out"
      python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$out"
    done
  done
done
