#!/usr/bin/env bash
# The test command: set-up (idempotent), then every test in an optimised build (the engine tests run the
# real model, which is 10-100x slower unoptimised).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
swift build -c release --build-tests
swift test -c release --skip-build
