#!/usr/bin/env bash
# Every decoding method on the same GSM8K-CoT prompts in one run: speed and time ratio to full, model /
# parameter / effective density, AAL, and the CPU cost model (sirius-method.md §12), swept over K.
# Usage: benchmarks/sirius-methods.sh [PROMPTS] [DENSITY] [THREADS] [extra bench options...]
# (PERIODS=4,8,16 to sweep other periods; default 2,3,4,8,16; OUT=FILE also writes the JSON the README's
# tables are rendered from: benchmarks/render-readme.py)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}; density=${2:-0.5}; threads=${3:-1}; shift $(( $# < 3 ? $# : 3 ))
sw=.build/release/sirius-worker
[ -x "$sw" ] || swift build -c release --product sirius-worker
args=(bench --methods full,griffin,cats,sirius/griffin,sirius/cats --task gsm8k-cot --limit "$n"
  --density "$density" --periods "${PERIODS:-${KERNEL_SIZES:-2,3,4,8,16}}" --threshold 0.1 --acceptance threshold -t "$threads" --numerics fast "$@")
if [ -n "${OUT:-}" ]; then
  "$sw" "${args[@]}" -o json > "$OUT"
  python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), indent=1))' "$OUT" > /dev/null
  echo "wrote $OUT" >&2
else
  exec "$sw" "${args[@]}"
fi
