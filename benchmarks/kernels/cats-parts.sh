#!/usr/bin/env bash
# The parts of a CATS MLP step against the dense MLP's products, on the engine's own C kernels with
# SmolLM2-135M's shapes (random weights in cache, one thread, best of 40); see cats-parts.c.
# Usage: benchmarks/kernels/cats-parts.sh   (needs clang, which the Swift toolchain brings)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
clang -O3 -ISources/CKernels/include benchmarks/kernels/cats-parts.c Sources/CKernels/kernels.c \
  Sources/CKernels/sparse_select.c -o "$out/cats-parts" -lm
"$out/cats-parts"
