#!/usr/bin/env bash
# The main job: set-up (idempotent), an optimised build, then a small real evaluation — HumanEval,
# 20 problems, full / griffin / sirius on SmolLM2 — with two local workers, ending with the report.
# Extra arguments go to `sirius-coord start` (e.g. --limit 50, --task gsm8k-cot, --method cats@0.5).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
swift build -c release
db=${SIRIUS_DB:-sirius-runs.sqlite}
exec .build/release/sirius-coord start --db "$db" --workers 2 --engine sirius \
  --task humaneval --limit 20 \
  --method full --method griffin@0.5 --method sirius/griffin@0.5 --acceptance threshold "$@"
