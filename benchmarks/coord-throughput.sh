#!/usr/bin/env bash
# Coordinator throughput: 8 fake workers at zero decode time (release build).
# Prints results committed per second and RESULT→ACK latency p50/p99 (commit included), as logged
# by sirius-coord at the end of the run.
#   benchmarks/coord-throughput.sh [EXAMPLES] [WORKERS] [CREDITS]
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES="${1:-20000}"; WORKERS="${2:-8}"; CREDITS="${3:-2}"
SCRATCH="${SCRATCH:-.build}"
if [ -z "${BIN:-}" ]; then
  swift build -c release --scratch-path "$SCRATCH" --product sirius-worker >&2
  swift build -c release --scratch-path "$SCRATCH" --product sirius-coord >&2
  BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)"
fi
DIR="$(mktemp -d)"; trap 'rm -rf "$DIR"' EXIT
echo "examples=$EXAMPLES workers=$WORKERS credits=$CREDITS shard=32 method=full engine=fake(0 ms)" >&2
"$BIN/sirius-coord" start --db "$DIR/bench.sqlite" --workers "$WORKERS" --credits "$CREDITS" --quiet --format csv \
  --engine fake --task "synthetic:$EXAMPLES" --method full --shard-size 32 2>&1 >/dev/null \
  | grep -E 'served|ACK latency'
