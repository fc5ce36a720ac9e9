#!/usr/bin/env bash
# Fifty services: a generated compose project with 30 apps stopped during the
# backup (6 dependency chains of 5, so 5 stop waves), 5 PostgreSQL and 5
# MariaDB dumped, 9 bystanders and the sidecar, backed up end to end on the
# real engine (the short window, the default); then the same 30 frozen
# instead (FREEZE_DURING_BACKUP=true: the engine's pause). Then the same
# project with only one app stopped, then frozen (the other 29 keep their
# volumes, backed up live): the baseline for "stopping and starting stay
# concurrent", and for "a freeze does not grow with the services".
#
# Prints, as medians of BENCH_REPEAT runs (3 by default): discovery and the
# plan (the run's report), the stop phase (the first stopped app's `die` to
# the last one's), the start phase (the first `start` to the last), the stop
# window (the first `die` to the last `start`; all from the engine's events)
# and the whole run; then the ratio of the windows (asked: <= 2). Two
# baselines, in the same invocation, measured the same way from the events:
# the engine alone stopping the same containers through its API in the same
# waves and starting them in the reverse waves, nothing in between; and the
# engine's floor, all of them stopped at once and started at once, the order
# ignored. stackshot starts each container as soon as what it depends on has
# started (not wave by wave), so its window can be below the first. Nothing
# here is asserted: it measures. Needs what scripts/test needs. BENCH_KEEP=dir
# keeps each run's engine events, log and report in dir, to see where the
# window's time goes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

reps=${BENCH_REPEAT:-3}
project=stackshot-bench-scale
export SIDECAR_IMAGE=stackshot-test/sidecar:bench
log() { printf 'bench: %s\n' "$*" >&2; }

bash tests/bench/build-images.sh
# BENCH_BINARY: a stackshot already built (the debug one, say); default:
# the release build. The window is mostly the engine's work.
bin=${BENCH_BINARY:-}
if [ -z "$bin" ]; then cargo build --release --locked -q; bin=target/release/stackshot; fi
# The image users run, with restic 0.14: the restic of the baseline too.
bash tests/bench/sidecar-image.sh "$bin" bookworm "$SIDECAR_IMAGE"

work=$(mktemp -d)
mkdir -p "$work/secrets"
echo bench-password >"$work/secrets/restic-password"
file=$work/docker-compose.yml
compose() { docker-compose -p "$project" -f "$file" "$@"; }
cleanup() { compose down -v >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

# generate STOPPED: the compose file, with the first STOPPED apps labelled
# stackshot.stop-during-backup (chain c, link l depends on link l+1).
generate() {
  local stopped=$1 n=0
  {
    echo 'version: "2.4"'
    echo 'services:'
    for c in 1 2 3 4 5 6; do
      for l in 1 2 3 4 5; do
        n=$((n + 1))
        echo "  app-$c-$l:"
        echo "    image: stackshot-test/base:local"
        echo "    command: [bash, -c, 'trap \"exit 0\" TERM; i=0; while :; do i=\$\$((i+1)); echo \$\$i > /data/counter; sleep 1 & wait \$\$!; done']"
        echo "    volumes: [app-$c-$l:/data]"
        echo "    labels:"
        echo "      stackshot.volumes: \"true\""
        [ "$n" -le "$stopped" ] && echo "      stackshot.stop-during-backup: \"true\""
        # The label compose v2 writes for depends_on; compose v1 writes none
        # (the plan would see no chain), so it is written here for both.
        [ "$l" -lt 5 ] && echo "      com.docker.compose.depends_on: \"app-$c-$((l + 1)):service_started:false\""
        [ "$l" -lt 5 ] && echo "    depends_on: [app-$c-$((l + 1))]"
      done
    done
    for i in 1 2 3 4 5; do
      echo "  pg-$i:"
      echo "    image: stackshot-test/postgres:local"
      echo "    environment: {POSTGRES_USER: app, POSTGRES_PASSWORD: bench-pg, POSTGRES_DB: appdb}"
      echo "    volumes: [pg-$i:/var/lib/postgresql/data]"
      echo "    labels: {stackshot.postgres: \"true\"}"
      echo "  maria-$i:"
      echo "    image: stackshot-test/mariadb:local"
      echo "    environment: {MARIADB_ROOT_PASSWORD: bench-maria, MARIADB_DATABASE: shop}"
      echo "    volumes: [maria-$i:/var/lib/mysql]"
      echo "    labels: {stackshot.mariadb: \"true\", stackshot.databases: shop}"
    done
    for i in $(seq 9); do
      echo "  bystander-$i:"
      echo "    image: stackshot-test/base:local"
      echo "    command: [bash, -c, 'trap \"exit 0\" TERM; while :; do sleep 1 & wait \$\$!; done']"
    done
    echo "  backup:"
    echo "    image: $SIDECAR_IMAGE"
    echo "    command: [idle]   # the image has no shell: stackshot idles"
    echo "    environment: {RESTIC_REPOSITORY: /repository, RESTIC_PASSWORD_FILE: /run/secrets/restic-password}"
    echo "    volumes:"
    echo "      - /var/run/docker.sock:/var/run/docker.sock"
    echo "      - repository:/repository"
    echo "      - cache:/cache"
    echo "      - $work/secrets/restic-password:/run/secrets/restic-password:ro"
    echo "volumes:"
    echo "  repository:"
    echo "  cache:"
    for c in 1 2 3 4 5 6; do for l in 1 2 3 4 5; do echo "  app-$c-$l:"; done; done
    for i in 1 2 3 4 5; do echo "  pg-$i:"; echo "  maria-$i:"; done
  } >"$file"
}

c() { compose ps -q "$1"; }
wait_databases() {
  for i in 1 2 3 4 5; do
    for _ in $(seq 180); do
      docker exec "$(c "pg-$i")" psql -X -U app -d appdb -Atc 'select 1' >/dev/null 2>&1 &&
        docker exec -e MYSQL_PWD=bench-maria "$(c "maria-$i")" mariadb -uroot shop -Ne 'select 1' >/dev/null 2>&1 && break
      sleep 1
    done
  done
}
seed() {
  for i in 1 2 3 4 5; do
    docker exec "$(c "pg-$i")" psql -X -q -U app -d appdb -c \
      "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g"
    docker exec -e MYSQL_PWD=bench-maria "$(c "maria-$i")" mariadb -uroot shop -e \
      "CREATE TABLE t (id int primary key, v text); INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_20000"
  done
}

# run [VAR=value...]: one backup, with VAR=value in its environment
# (FREEZE_DURING_BACKUP=true: the apps frozen instead of stopped); prints
# "plan stop start window run held" (ms, then seconds, then how many were
# stopped or frozen). Stopped containers count from `die` to `start`,
# frozen ones from `pause` to `unpause`.
run() {
  local envs=() kv
  for kv in "$@"; do envs+=(-e "$kv"); done
  docker events --filter "label=com.docker.compose.project=$project" \
    --format '{{.TimeNano}}|{{.Action}}|{{index .Actor.Attributes "name"}}' >"$work/events" &
  local ev=$!; sleep 1
  local t0; t0=$(date +%s.%N)
  docker exec "${envs[@]}" "$(c backup)" stackshot backup --json >"$work/report.json" 2>"$work/run.log" ||
    { log "the backup failed: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["reason"])' "$work/report.json")"; exit 1; }
  local t1; t1=$(date +%s.%N)
  sleep 1; kill $ev; wait $ev 2>/dev/null || true
  # BENCH_KEEP=dir keeps each run's events, log and report there.
  if [ -n "${BENCH_KEEP:-}" ]; then
    local k; k=$BENCH_KEEP/run-$(date +%s%N)
    mkdir -p "$k" && cp "$work/events" "$work/run.log" "$work/report.json" "$k/"
  fi
  python3 - "$work/events" "$work/report.json" "$t0" "$t1" <<'PY'
import json, sys
report = json.load(open(sys.argv[2]))
stopped = {s["container"] for s in report["window"]["stopped"]}
frozen = {s["container"] for s in report["window"].get("frozen", [])}
ev = []
for l in open(sys.argv[1]):
    if l.strip():
        t, rest = l.strip().split("|", 1)
        action, name = rest.rsplit("|", 1)
        ev.append((t, action, name))
# Held: a stopped container from its `die`, a frozen one from its `pause`;
# let go: at its `start`, or its `unpause`.
die = [int(t) for t, a, n in ev if (a == "die" and n in stopped) or (a == "pause" and n in frozen)]
start = [int(t) for t, a, n in ev if (a == "start" and n in stopped) or (a == "unpause" and n in frozen)]
stopped |= frozen
# Discovery (the "recover" phase) and the plan built over it, in ms.
plan = 1000 * sum(p["seconds"] for p in report["phases"] if p["name"] in ("recover", "plan"))
print(f"{plan:.1f} {(max(die) - min(die)) / 1e9:.2f} {(max(start) - min(start)) / 1e9:.2f} "
      f"{(max(start) - min(die)) / 1e9:.2f} {float(sys.argv[4]) - float(sys.argv[3]):.2f} {len(stopped)}")
PY
}

# raw N waves|flat: the baseline, the engine alone doing the window's stops
# and starts (flat: all at once, the order ignored, the engine's floor;
# waves: in the same order): the first N apps stopped through the API a wave at a
# time (chain link 1 of every chain at once, then link 2, ...: what depends
# on another stops first), then started in the reverse waves, nothing in
# between; prints the window (first `die` to last `start`).
raw() {
  local n=$1 how=$2 c l k
  # The ids of each wave, looked up before the clock starts (a compose call
  # takes a good part of a second): wave L is link L of the first N apps
  # (apps are numbered chain by chain).
  local -a waves=("" "" "" "" "" "")
  for l in 1 2 3 4 5; do
    for c in 1 2 3 4 5 6; do
      k=$(((c - 1) * 5 + l))
      [ "$k" -le "$n" ] && waves[l]+="$(c "app-$c-$l") "
    done
  done
  docker events --filter "label=com.docker.compose.project=$project" \
    --format '{{.TimeNano}}|{{.Action}}|{{.Actor.ID}}' >"$work/raw-events" &
  local ev=$!; sleep 1
  local api="curl -sf -o /dev/null --unix-socket /var/run/docker.sock -X POST http://engine/containers"
  if [ "$how" = waves ]; then
    for l in 1 2 3 4 5; do
      printf '%s\n' ${waves[l]} | xargs -r -P 6 -I{} $api/{}/stop?t=10
    done
    for l in 5 4 3 2 1; do
      printf '%s\n' ${waves[l]} | xargs -r -P 6 -I{} $api/{}/start
    done
  else # all at once, the order ignored: the engine's floor
    printf '%s\n' ${waves[*]} | xargs -r -P 30 -I{} $api/{}/stop?t=10
    printf '%s\n' ${waves[*]} | xargs -r -P 30 -I{} $api/{}/start
  fi
  sleep 1; kill $ev; wait $ev 2>/dev/null || true
  python3 - "$work/raw-events" ${waves[*]} <<'PY'
import sys
ids = set(sys.argv[2:])
ev = [l.strip().split("|") for l in open(sys.argv[1]) if l.strip()]
die = [int(t) for t, a, i in ev if a == "die" and i in ids]
start = [int(t) for t, a, i in ev if a == "start" and i in ids]
print(f"{(max(start) - min(die)) / 1e9:.2f}")
PY
}
raw_median() {
  local out=()
  for _ in $(seq "$reps"); do out+=("$(raw "$1" "$2")"); sleep 2; done
  printf '%s\n' "${out[@]}" | python3 -c 'import statistics, sys; print(f"{statistics.median(float(l) for l in sys.stdin if l.strip()):.2f}")'
}

# measure [VAR=value...]: $reps runs; prints the medians "plan stop start
# window run held".
measure() {
  local out=()
  for _ in $(seq "$reps"); do out+=("$(run "$@")"); done
  printf '%s\n' "${out[@]}" | python3 -c '
import statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
m = lambda i: statistics.median(float(r[i]) for r in rows)
print(f"{m(0):.1f} {m(1):.2f} {m(2):.2f} {m(3):.2f} {m(4):.2f} {rows[0][5]}")'
}

generate 30
compose down -v >/dev/null 2>&1 || true
log "50 services up (30 stopped during backups, 5 PostgreSQL, 5 MariaDB)"
compose up -d >/dev/null 2>&1
wait_databases
seed
run >/dev/null # a first backup: the repository and the parents exist
read -r p30 s30 u30 w30 t30 n30 < <(measure)
log "the 30 frozen instead (FREEZE_DURING_BACKUP=true)"
read -r zp30 zs30 zu30 zw30 zt30 zn30 < <(measure FREEZE_DURING_BACKUP=true)
e30=$(raw_median 30 waves)
f30=$(raw_median 30 flat)
log "the same project, one app stopped"
generate 1
compose up -d >/dev/null 2>&1
wait_databases
run >/dev/null
read -r p1 s1 u1 w1 t1 n1 < <(measure)
log "the one frozen instead"
read -r zp1 zs1 zu1 zw1 zt1 zn1 < <(measure FREEZE_DURING_BACKUP=true)
e1=$(raw_median 1 waves)

printf '\n| held (median of %s) | discovery + plan | stop or freeze phase | start or thaw phase | window | the engine alone | whole run |\n|---|---|---|---|---|---|---|\n' "$reps"
printf '| %s stopped | %s ms | %s s | %s s | %s s | %s s | %s s |\n' "$n30" "$p30" "$s30" "$u30" "$w30" "$e30" "$t30"
printf '| %s stopped | %s ms | %s s | %s s | %s s | %s s | %s s |\n' "$n1" "$p1" "$s1" "$u1" "$w1" "$e1" "$t1"
printf '| %s frozen (pause → unpause) | %s ms | %s s | %s s | %s s | | %s s |\n' "$zn30" "$zp30" "$zs30" "$zu30" "$zw30" "$zt30"
printf '| %s frozen | %s ms | %s s | %s s | %s s | | %s s |\n' "$zn1" "$zp1" "$zs1" "$zu1" "$zw1" "$zt1"
python3 - "$w30" "$w1" "$e30" "$e1" "$f30" "$zw30" "$zw1" <<'PY'
import sys
w30, w1, e30, e1, f30, z30, z1 = map(float, sys.argv[1:])
print(f"\nwindow, 30 stopped / 1 stopped: stackshot {w30 / w1:.2f} (asked: <= 2), the engine alone {e30 / e1:.2f}")
print(f"window, 30 frozen / 1 frozen: {z30 / z1:.2f} (asked: <= 2); 30 frozen / 30 stopped: {z30 / w30:.2f}")
print(f"stackshot's window / the engine alone's: {w30 / e30:.2f} with 30 stopped, {w1 / e1:.2f} with 1")
print("(the engine alone: the same containers stopped through the API in the same waves, then started in the reverse waves, nothing between)")
print(f"the engine's floor, the 30 stopped all at once and started all at once, nothing between: {f30:.2f} s, {f30 / e1:.2f} x the engine alone with 1")
PY
