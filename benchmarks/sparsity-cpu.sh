#!/usr/bin/env bash
# The tables of the README's "Sparsity and Sirius on this CPU": benchmarks/sirius-methods.sh on the first
# PROMPTS prompts of GSM8K-CoT and CSQA, at one and two threads, density 0.5 and 0.4, with the adaptive
# period beside the fixed ones; one JSON per run in benchmarks/results/ (methods-TASK-dD-tT.json), which
# `python3 benchmarks/render-readme.py` turns into the tables.
# Usage: benchmarks/sparsity-cpu.sh [PROMPTS]   (PERIODS, ADAPTIVE, FULL_AFTER as for sirius-methods.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
export PERIODS=${PERIODS:-2,4,16} ADAPTIVE=${ADAPTIVE:-0.5 0.9}
for task in gsm8k-cot csqa; do
  for density in 0.5 0.4; do
    for threads in 1 2; do
      out=benchmarks/results/methods-$task-d$density-t$threads.json
      echo "== $task density $density, $threads thread(s) → $out" >&2
      TASK=$task OUT=$out benchmarks/sirius-methods.sh "$n" "$density" "$threads"
    done
  done
done
