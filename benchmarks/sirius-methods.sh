#!/usr/bin/env bash
# Every decoding method on the same prompts in one run: speed and time ratio to full, model / parameter /
# effective density, AAL, accuracy, and the CPU cost model (sirius-method.md §12), swept over K. The run is
# interleaved: every method decodes prompt i before any starts prompt i + 1 (order reversed on odd prompts).
# Usage: benchmarks/sirius-methods.sh [PROMPTS] [DENSITY] [THREADS] [extra bench options...]
#   TASK=csqa           prompts of another task (default gsm8k-cot)
#   PERIODS=4,8,16      other periods (default 2,3,4,8,16)
#   ADAPTIVE="0.5 0.9"  also Sirius-Griffin and Sirius-CATS with an adaptive period of each bound (K = 16)
#   OUT=FILE            also write the JSON the README's tables are rendered from (benchmarks/render-readme.py)
#   FULL_AFTER=1        a second full row, last in the order: its time ratio to the first is what two
#                       identical methods measure apart in this run (the noise floor of every ratio)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}; density=${2:-0.5}; threads=${3:-1}; shift $(( $# < 3 ? $# : 3 ))
sw=.build/release/sirius-worker
[ -x "$sw" ] || swift build -c release --product sirius-worker
methods=full,griffin,cats,sirius/griffin,sirius/cats
for a in ${ADAPTIVE:-}; do
  methods+=",sirius/griffin@$density,period=16,adaptive=$a,sirius/cats@$density,period=16,adaptive=$a"
done
[ -n "${FULL_AFTER:-}" ] && methods+=",full"
args=(bench --methods "$methods" --task "${TASK:-gsm8k-cot}" --limit "$n"
  --density "$density" --periods "${PERIODS:-${KERNEL_SIZES:-2,3,4,8,16}}" --threshold 0.1 --acceptance threshold -t "$threads" --numerics fast "$@")
if [ -n "${OUT:-}" ]; then
  "$sw" "${args[@]}" -o json > "$OUT"
  python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$OUT"
  echo "wrote $OUT" >&2
else
  exec "$sw" "${args[@]}"
fi
