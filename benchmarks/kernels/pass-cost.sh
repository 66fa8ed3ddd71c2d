#!/usr/bin/env bash
# A T-token dense pass against a one-token step on the engine's product kernel alone (SmolLM2-135M's
# products, T = 1..4, one thread; weights cached, model-sized, and larger than any cache); see
# pass-cost.c. Takes about a minute and 0.8 GB of memory; the table also goes to
# benchmarks/results/pass-cost.txt, which the README shows (benchmarks/render-readme.py).
# Usage: benchmarks/kernels/pass-cost.sh   (needs clang, which the Swift toolchain brings)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
clang -O3 -ISources/CKernels/include benchmarks/kernels/pass-cost.c Sources/CKernels/kernels.c \
  Sources/CKernels/sparse_select.c -o "$out/pass-cost" -lm
"$out/pass-cost" | tee benchmarks/results/pass-cost.txt
