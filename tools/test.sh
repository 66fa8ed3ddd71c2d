#!/usr/bin/env bash
# The test command: set-up (idempotent), then every test in an optimised build (the engine tests run the
# real model, which is 10-100x slower unoptimised). Tests use @testable imports, so the optimised build
# enables testing; it lives in its own build folder so benchmark builds (.build) stay untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
# The second real model of the engine tests (Gemma-3-270M; Gemma Terms of Use, see the README).
tools/fetch-model.sh gemma3-270m >/dev/null
swift build -c release --build-tests --scratch-path .build-test -Xswiftc -enable-testing
swift test -c release --skip-build --scratch-path .build-test -Xswiftc -enable-testing
