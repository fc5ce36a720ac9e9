#!/usr/bin/env bash
# The stop window's file pass alone, on the host (no engine, no containers):
# how its time grows with the number of files when the number of changed
# files stays the same.
#
# BENCH_FILES files (10,000) of BENCH_FILES_MB (1024) in all, in one
# directory, as bench/window.sh lays them out; a restic repository on local
# disk; a first snapshot by `restic backup` (the pre-pass: the parent). Then,
# BENCH_REPEAT times (3): BENCH_CHANGED files (100, spread evenly over all
# the files) get 4 KiB more, and the pass is taken twice against the same
# parent, in the same state:
#
#   rustic   stackshot's armed pass (`stackshot worker rustic`, the one the
#            window runs): timed from `go` to its summary, since opening the
#            repository happens before the window
#   restic   `restic backup --parent` doing the same work (the baseline),
#            timed whole, and its own `total_duration` (the walk and the
#            writes, without opening the repository)
#
# Then three times as many files again go into a second directory (x4), a new
# parent is taken, and the same is measured. Prints a table of medians and
# samples and the ratios; nothing is asserted. Needs restic, python3 and a
# stackshot binary (BENCH_BINARY, default: target/release/stackshot, built).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

files=${BENCH_FILES:-10000}
files_mb=${BENCH_FILES_MB:-1024}
changed=${BENCH_CHANGED:-100}
reps=${BENCH_REPEAT:-3}
bin=${BENCH_BINARY:-}
log() { printf 'bench: %s\n' "$*" >&2; }

if [ -z "$bin" ]; then
  cargo build --release --locked -q
  bin=target/release/stackshot
fi
bin=$(realpath "$bin")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RESTIC_REPOSITORY=$work/repo RESTIC_PASSWORD=bench-password RESTIC_CACHE_DIR=$work/cache
data=$work/volumes
restic init -q

# files_to N MB DIR: N files of MB*1024/N KiB of random bytes in DIR.
files_to() {
  mkdir -p "$data/$3"
  python3 - "$1" "$(( $2 * 1024 / $1 ))" "$data/$3" <<'PY'
import os, sys
n, kib, d = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
for i in range(1, n + 1):
    with open(os.path.join(d, f"f{i}"), "wb") as f:
        f.write(os.urandom(kib * 1024))
PY
}
# churn: $changed files, spread evenly over every file, grow by 4 KiB.
churn() {
  python3 - "$data" "$changed" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
for p in paths[:: max(1, len(paths) // n)][:n]:
    with open(p, "ab") as f:
        f.write(os.urandom(4096))
PY
}
# parent: a restic snapshot of everything now: prints its id.
parent() { restic backup -q --json --host bench --tag prepass "$data" | python3 -c '
import json, sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("message_type") == "summary": print(m["snapshot_id"])'; }

# rustic PARENT: stackshot's armed pass; prints the seconds from go to summary.
rustic() {
  python3 - "$bin" "$1" "$data" <<'PY'
import json, os, subprocess, sys, time
binary, parent, data = sys.argv[1:4]
env = [[k, os.environ[k]] for k in ("RESTIC_REPOSITORY", "RESTIC_PASSWORD")]
p = subprocess.Popen([binary, "worker", "rustic", "backup", "--json", "--host", "bench",
                      "--tag", "files", "--parent", parent, data],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
p.stdin.write(json.dumps({"env": env}) + "\n"); p.stdin.flush()
t0 = None
for line in p.stdout:
    ev = json.loads(line)
    if ev["event"] == "ready":
        t0 = time.monotonic(); p.stdin.write("go\n"); p.stdin.flush()
    elif ev["event"] == "summary":
        t1 = time.monotonic()
        s = ev
    elif ev["event"] == "file_error":
        sys.exit(f"rustic pass: {ev}")
p.stdin.close()
if p.wait() != 0 or t0 is None:
    sys.exit("the rustic pass failed")
print(f"{t1 - t0:.3f}")
PY
}
# restic PARENT: prints "whole_seconds own_total_duration".
restic_pass() {
  local t0 t1 own
  t0=$(date +%s.%N)
  own=$(restic backup -q --json --host bench --tag files --parent "$1" "$data" | python3 -c '
import json, sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("message_type") == "summary": print(m["total_duration"])')
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.3f} {$own:.3f}')"
}

# measure: prints "rustic_median restic_median restic_own_median rustic_samples restic_samples".
measure() {
  local p r=() w=() o=()
  p=$(parent)
  for _ in $(seq "$reps"); do
    churn; sync
    r+=("$(rustic "$p")")
    read -r whole own < <(restic_pass "$p")
    w+=("$whole"); o+=("$own")
  done
  python3 - "${r[*]}" "${w[*]}" "${o[*]}" <<'PY'
import statistics, sys
r, w, o = ([float(x) for x in a.split()] for a in sys.argv[1:4])
m = statistics.median
print(f"{m(r):.3f} {m(w):.3f} {m(o):.3f} " + ",".join(f"{x:.3f}" for x in r) + " " + ",".join(f"{x:.3f}" for x in w))
PY
}

log "$files files, $files_mb MB, $changed changed before each pass, $reps passes each"
files_to "$files" "$files_mb" base
read -r r1 w1 o1 rs1 ws1 < <(measure)
log "files x4"
files_to $((files * 3)) $((files_mb * 3)) more
read -r r4 w4 o4 rs4 ws4 < <(measure)

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
printf '\n| files (%s changed), median of %s | rustic pass, go → summary | samples | restic backup, whole | restic, own total_duration |\n|---|---|---|---|---|\n' "$changed" "$reps"
printf '| %s | %s s | %s | %s s | %s s |\n' "$files" "$r1" "${rs1//,/ · }" "$w1" "$o1"
printf '| %s | %s s | %s | %s s | %s s |\n' "$((files * 4))" "$r4" "${rs4//,/ · }" "$w4" "$o4"
printf '\nrustic pass, files x4 / x1: %s (asked: <= 1.3 of the window)\n' "$(ratio "$r4" "$r1")"
printf 'restic pass (own duration), files x4 / x1: %s\n' "$(ratio "$o4" "$o1")"
printf 'rustic pass / restic own duration: x1 %s, x4 %s\n' "$(ratio "$r1" "$o1")" "$(ratio "$r4" "$o4")"
