#!/usr/bin/env bash
# Layout check of sirius-coord's lm-eval export against lm-evaluation-harness itself
# (tools/check-lm-eval-layout.py). Makes a virtualenv with lm-eval (LMEVAL_VENV, default
# /tmp/lmeval-venv; LM_EVAL_VERSION, default the fixture's 0.4.13), records lm-eval's layout
# from its dummy model on a tiny local task, shows how it differs from the committed fixture
# (--update: replaces the fixture), then checks each RESULTS_JSON given against the committed one.
#   tools/check-lm-eval-layout.sh [--update] [RESULTS_JSON ...]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LMEVAL_VENV:-/tmp/lmeval-venv}"
version="${LM_EVAL_VERSION:-0.4.13}"
fixture=Tests/CoordinatorTests/Fixtures/lm-eval-layout.json
update=0
if [[ "${1:-}" == "--update" ]]; then update=1; shift; fi

if [[ ! -x "$venv/bin/lm_eval" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "lm-eval==$version"
fi
echo "lm-eval $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("lm-eval"))') in $venv"

if [[ $update == 1 ]]; then
  "$venv/bin/python" tools/check-lm-eval-layout.py record --lm-eval "$venv/bin/lm_eval" --out "$fixture"
else
  fresh="$(mktemp --suffix=.json)"
  trap 'rm -f "$fresh"' EXIT
  "$venv/bin/python" tools/check-lm-eval-layout.py record --lm-eval "$venv/bin/lm_eval" --out "$fresh"
  if diff -u <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({k: d[k] for k in ("results", "samples_line")}, indent=1, sort_keys=True))' "$fixture") \
             <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({k: d[k] for k in ("results", "samples_line")}, indent=1, sort_keys=True))' "$fresh"); then
    echo "lm-eval's layout now is the committed fixture's"
  else
    echo "lm-eval's layout differs from $fixture (above); --update records it"
  fi
fi

status=0
for results in "$@"; do
  echo "== $results"
  "$venv/bin/python" tools/check-lm-eval-layout.py compare "$results" --fixture "$fixture" || status=1
done
exit $status
