#!/usr/bin/env bash
# Fifty services: a generated compose project with 30 apps stopped during the
# backup (6 dependency chains of 5, so 5 stop waves), 5 PostgreSQL and 5
# MariaDB dumped, 9 bystanders and the sidecar, backed up end to end on the
# real engine (the short window, the default). Then the same project with
# only one app stopped (the other 29 keep their volumes, backed up live):
# the baseline for "stopping and starting stay concurrent".
#
# Prints, as medians of BENCH_REPEAT runs (3 by default): discovery and the
# plan (the run's report), the stop phase (the first stopped app's `die` to
# the last one's), the start phase (the first `start` to the last), the stop
# window (the first `die` to the last `start`; all from the engine's events)
# and the whole run; then the ratio of the windows
# (asked: <= 2). Nothing here is asserted: it measures. Needs what
# scripts/test needs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

reps=${BENCH_REPEAT:-3}
project=stackshot-bench-scale
export SIDECAR_IMAGE=stackshot-test/sidecar:bench
log() { printf 'bench: %s\n' "$*" >&2; }

bash tests/bench/build-images.sh
cargo build --release --locked -q
docker build -q -f tests/bench/Dockerfile.prebuilt --build-arg RUNTIME_IMAGE=stackshot-test/base:local \
  -t "$SIDECAR_IMAGE" . >/dev/null

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
    echo "    entrypoint: [bash, -c, 'trap \"exit 0\" TERM; while :; do sleep 1 & wait \$\$!; done']"
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

# run: one backup; prints "plan stop window run" in seconds.
run() {
  docker events --filter "label=com.docker.compose.project=$project" \
    --format '{{.TimeNano}}|{{.Action}}|{{index .Actor.Attributes "name"}}' >"$work/events" &
  local ev=$!; sleep 1
  local t0; t0=$(date +%s.%N)
  docker exec "$(c backup)" stackshot backup --json >"$work/report.json" 2>"$work/run.log" ||
    { log "the backup failed: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["reason"])' "$work/report.json")"; exit 1; }
  local t1; t1=$(date +%s.%N)
  sleep 1; kill $ev; wait $ev 2>/dev/null || true
  python3 - "$work/events" "$work/report.json" "$t0" "$t1" <<'PY'
import json, sys
report = json.load(open(sys.argv[2]))
stopped = {s["container"] for s in report["window"]["stopped"]}
ev = []
for l in open(sys.argv[1]):
    if l.strip():
        t, rest = l.strip().split("|", 1)
        action, name = rest.rsplit("|", 1)
        ev.append((t, action, name))
die = [int(t) for t, a, n in ev if a == "die" and n in stopped]
start = [int(t) for t, a, n in ev if a == "start" and n in stopped]
# Discovery (the "recover" phase) and the plan built over it, in ms.
plan = 1000 * sum(p["seconds"] for p in report["phases"] if p["name"] in ("recover", "plan"))
print(f"{plan:.1f} {(max(die) - min(die)) / 1e9:.2f} {(max(start) - min(start)) / 1e9:.2f} "
      f"{(max(start) - min(die)) / 1e9:.2f} {float(sys.argv[4]) - float(sys.argv[3]):.2f} {len(stopped)}")
PY
}

# measure: $reps runs; prints the medians "plan stop window run stopped".
measure() {
  local out=()
  for _ in $(seq "$reps"); do out+=("$(run)"); done
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
log "the same project, one app stopped"
generate 1
compose up -d >/dev/null 2>&1
wait_databases
run >/dev/null
read -r p1 s1 u1 w1 t1 n1 < <(measure)

printf '\n| stopped (median of %s) | discovery + plan | stop phase | start phase | stop window | whole run |\n|---|---|---|---|---|---|\n' "$reps"
printf '| %s containers | %s ms | %s s | %s s | %s s | %s s |\n' "$n30" "$p30" "$s30" "$u30" "$w30" "$t30"
printf '| %s container | %s ms | %s s | %s s | %s s | %s s |\n' "$n1" "$p1" "$s1" "$u1" "$w1" "$t1"
printf '\nwindow, 30 stopped / 1 stopped: %s (asked: <= 2)\n' "$(python3 -c "print(f'{$w30/$w1:.2f}')")"
