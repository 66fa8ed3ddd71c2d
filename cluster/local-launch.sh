#!/usr/bin/env bash
# Loopback launcher: build, then run a coordinator with N local workers on 127.0.0.1.
#   cluster/local-launch.sh [WORKERS] [RUN_FILE] [extra sirius-coord start flags…]
# Example: cluster/local-launch.sh 4 cluster/runs/fake-smoke.json
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS="${1:-2}"; shift || true
RUN_FILE="${1:-cluster/runs/fake-smoke.json}"; shift || true
CONFIG="${CONFIG:-release}"
swift build -c "$CONFIG" --product sirius-worker
swift build -c "$CONFIG" --product sirius-coord
BIN="$(swift build -c "$CONFIG" --show-bin-path)"
exec "$BIN/sirius-coord" start --workers "$WORKERS" --run-file "$RUN_FILE" --db "${DB:-sirius-runs.sqlite}" "$@"
