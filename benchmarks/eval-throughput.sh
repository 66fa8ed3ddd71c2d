#!/usr/bin/env bash
# Evaluation throughput: the same run twice on this machine — one example at a time without the prefix
# cache (the behaviour before batching), then with the defaults (continuous batching, prefix cache) —
# and a check that every result hash is equal between the two. Release build; 2 local workers.
#
#   benchmarks/eval-throughput.sh TASK LIMIT [extra sirius-coord start arguments]
#   e.g. benchmarks/eval-throughput.sh csqa 100
#        benchmarks/eval-throughput.sh gsm8k-cot 50
#
# Writes benchmarks/results/throughput-TASK-LIMIT.json (served seconds, results/s, hash check, prefix
# reuse, the workers' peak resident memory) and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
TASK="${1:?task}"; LIMIT="${2:?limit}"; shift 2
SCRATCH="${SCRATCH:-.build}"
if [ -z "${BIN:-}" ]; then
  swift build -c release --scratch-path "$SCRATCH" >&2
  BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)"
fi
DIR="${KEEP_DIR:-$(mktemp -d)}"
OUT=benchmarks/results/throughput-$TASK-$LIMIT.json
mkdir -p benchmarks/results
common=(--workers 2 --engine sirius --task "$TASK" --limit "$LIMIT"
        --method full --method griffin@0.5 --method sirius/griffin@0.5 --acceptance threshold --quiet --format csv "$@")

run() {  # name, extra args...
  local name=$1; shift
  echo "== $name: sirius-coord start ${common[*]} $*" >&2
  "$BIN/sirius-coord" start --db "$DIR/$name.sqlite" --run-id "$name" "${common[@]}" "$@" >"$DIR/$name.csv" 2>"$DIR/$name.log"
  grep -E 'served|peak resident|prefix cache' "$DIR/$name.log" >&2 || true
}
run baseline --batch-size 1 --prefix-cache off --timing-sample 0
run batched

python3 - "$DIR" "$TASK" "$LIMIT" "$OUT" <<'EOF'
import json, re, sqlite3, sys
d, task, limit, out = sys.argv[1:]
def info(name):
    log = open(f"{d}/{name}.log").read()
    served = float(re.search(r"served ([0-9.]+) s", log).group(1))
    rss = [float(x) for x in re.findall(r"peak resident memory ([0-9.]+) MiB", log)]
    c = sqlite3.connect(f"{d}/{name}.sqlite")
    hashes = dict(((t, e, m), h) for t, e, m, h in c.execute("SELECT task, example_id, method, result_hash FROM results"))
    reused, prompt, hits, n = c.execute("SELECT SUM(reused_prompt_tokens), SUM(prompt_tokens), SUM(reused_prompt_tokens > 0), COUNT(*) FROM results").fetchone()
    devices = [r[0] for r in c.execute("SELECT DISTINCT device FROM results")]
    batch = max(r[0] for r in c.execute("SELECT DISTINCT batch_size FROM results"))
    return {"served_seconds": served, "results": len(hashes), "results_per_second": len(hashes) / served,
            "batch_size": batch,
            "worker_peak_rss_mib": rss, "prefix_hits": hits, "reused_prompt_tokens": reused, "prompt_tokens": prompt,
            "devices": devices}, hashes
b, hb = info("baseline")
x, hx = info("batched")
same = sum(1 for k in hb if hx.get(k) == hb[k])
res = {"task": task, "limit": int(limit), "baseline": b, "batched": x,
       "speedup_results_per_second": x["results_per_second"] / b["results_per_second"],
       "hashes_equal": same, "hashes_compared": len(hb), "all_equal": same == len(hb) == len(hx)}
json.dump(res, open(out, "w"), indent=1)
print(json.dumps(res, indent=1))
EOF
