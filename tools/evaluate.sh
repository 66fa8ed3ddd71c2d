#!/usr/bin/env bash
# The main job: set-up (idempotent), an optimised build, then a small real evaluation that shows what
# Sirius is for — CommonsenseQA (5-shot chain of thought), the first 50 questions, SmolLM2-135M with the
# full model, Griffin at density 0.5 (half the MLP neurons) and Sirius correcting Griffin (period 16,
# τ = 0.1, the paper's threshold acceptance) on two local workers. The sparse model's chain of thought
# collapses (few answers extracted); Sirius restores most of it. Ends with the report and where its HTML
# page (figures and tables) was written.
# Extra arguments go to `sirius-coord start` (e.g. --limit 100, --sweep density=0.3,0.5,0.7).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
# The CSQA questions and the reference runs' 5-shot prompt (from ../shared/data when present).
from=()
[ -d ../shared/data ] && from=(--from ../shared/data)
tools/fetch-data.sh "${from[@]}" --only csqa
swift build -c release
db=${SIRIUS_DB:-sirius-runs.sqlite}
exec .build/release/sirius-coord start --db "$db" --workers 2 --engine sirius \
  --task csqa --limit 50 \
  --method full --method griffin@0.5 --method sirius/griffin@0.5 --acceptance threshold "$@"
