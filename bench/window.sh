#!/usr/bin/env bash
# The stop window, measured from the engine's own events (the app's `die` to
# its `start`), on the test bench (real engine, PostgreSQL, MariaDB, restic):
#
#   full      STOP_WINDOW=full (dumps and the whole file snapshot inside the window)
#   short     STOP_WINDOW=short (the default), same stack, same invocation
#   short, restic pass  WINDOW_FILE_PASS=restic: the window's file pass by a
#             `restic backup` started inside it (the baseline for the armed
#             rustic pass, which opens the repository before the window)
#   short 4xDB    the databases four times larger
#   short 4xfiles the files four times larger, the same churn
#
# Before each run 1 % of the files change. Each measured run is repeated
# BENCH_REPEAT times (3 by default): the table shows the median and every
# sample, the ratios use the medians. The files x4 ratio is taken against a
# short run measured just before the files grew, with the databases in the
# same state. Prints each window, the ratios the short-window issue asks for,
# and the whole run's wall time. Sizes:
#
#   BENCH_FILES_MB=1024 BENCH_FILES=10000 BENCH_PG_MB=500 BENCH_MARIA_MB=250 bench/window.sh
#
# (the defaults are a quarter of that, for a 2-core machine). Needs what
# scripts/test needs. Nothing here is asserted: it measures.
#
# BENCH_REPOSITORY=rest or =s3 puts the repository on the test bench's REST
# server (`rclone serve restic`) or S3 server (`rclone serve s3`), on the
# stack's network, and measures full and short, then short with 10 MB
# (BENCH_LATE_MB) written after the pre-pass (the run held at its `armed`
# step by the test pause, STACKSHOT_TEST_PAUSE_DIR, while they are written),
# with the sidecar's uplink as is and throttled to 1 MB/s (BENCH_UPLINK, a
# tc rate: a token bucket on the sidecar's network interface, which its
# workers share; needs tc and nsenter on the host), and throttled with the
# window's pass taken by restic, which uploads inside the window (what the
# spool avoids). Those are the rows and ratios the every-backend issue asks
# for.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

files_mb=${BENCH_FILES_MB:-256}
files=${BENCH_FILES:-2500}
pg_mb=${BENCH_PG_MB:-125}
maria_mb=${BENCH_MARIA_MB:-64}
reps=${BENCH_REPEAT:-3}
remote=${BENCH_REPOSITORY:-local}
project=stackshot-bench-window-$remote
export SIDECAR_IMAGE=stackshot-test/sidecar:bench
log() { printf 'bench: %s\n' "$*" >&2; }

bash tests/bench/build-images.sh
cargo build --release --locked -q
# The image users run, with restic 0.14: the restic of the baseline too.
bash tests/bench/sidecar-image.sh target/release/stackshot bookworm "$SIDECAR_IMAGE"

work=$(mktemp -d)
export E2E_DIR=$work/stack
mkdir -p "$E2E_DIR/uploads" "$E2E_DIR/secrets"
echo maria-root-secret >"$E2E_DIR/secrets/mariadb-root"
echo bench-password >"$E2E_DIR/secrets/restic-password"
compose_files=(-f tests/stack/docker-compose.yml)
case $remote in
  local) ;;
  rest|s3)
    E2E_RCLONE=$(readlink -f "$(command -v rclone)"); export E2E_RCLONE
    export E2E_REST_DATA=$work/rest E2E_S3_DATA=$work/s3; mkdir -p "$E2E_REST_DATA" "$E2E_S3_DATA"
    echo "rest:http://stackshot:stackshot-test-rest-secret@rest:8000/stackshot/" >"$E2E_DIR/secrets/rest-repository"
    echo stackshot-test-key >"$E2E_DIR/secrets/s3-access-key-id"
    echo stackshot-test-s3-secret >"$E2E_DIR/secrets/s3-secret-access-key"
    compose_files+=(-f "tests/stack/$remote.override.yml") ;;
  *) echo "BENCH_REPOSITORY=$remote: not one of local, rest, s3" >&2; exit 2 ;;
esac
compose() { docker-compose -p "$project" "${compose_files[@]}" "$@"; }
cleanup() { compose down -v >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
compose down -v >/dev/null 2>&1 || true
compose up -d --no-build >/dev/null 2>&1
c() { compose ps -q "$1"; }
psql_() { docker exec "$(c postgres)" psql -X -q -U app -d appdb -Atc "$1"; }
maria_() { docker exec -e MYSQL_PWD=maria-root-secret "$(c mariadb)" mariadb -uroot shop -Ne "$1"; }
for _ in $(seq 90); do psql_ 'select 1' >/dev/null 2>&1 && maria_ 'select 1' >/dev/null 2>&1 && break; sleep 1; done

# Databases of about N MB of dump (rows of about 250 bytes).
pg_to() { psql_ "CREATE TABLE IF NOT EXISTS big (id bigint, payload text)"
  local have; have=$(psql_ "select coalesce(max(id), 0) from big")
  psql_ "INSERT INTO big SELECT g, md5(g::text) || repeat('x', 200) FROM generate_series($((have + 1)), $(( $1 * 4096 ))) g"; }
maria_to() { maria_ "CREATE TABLE IF NOT EXISTS big (id bigint primary key, payload text) ENGINE=InnoDB"
  local have; have=$(maria_ "select coalesce(max(id), 0) from big")
  maria_ "INSERT INTO big SELECT seq, CONCAT(MD5(seq), REPEAT('x', 200)) FROM seq_$((have + 1))_to_$(( $1 * 4096 ))"; }
# Files: N files of (MB*1024/N) KB in the app's volume, under /data/bench/<set>.
files_to() { docker exec "$(c app)" sh -c "mkdir -p /data/bench/$3 && cd /data/bench/$3 && for i in \$(seq $1); do head -c $(( $2 * 1024 / $1 ))K /dev/urandom > f\$i; done"; }
churn() { docker exec "$(c app)" sh -c "cd /data/bench && for f in \$(find . -type f | head -n $(( files / 100 ))); do head -c 4K /dev/urandom >> \$f; done"; }

# After a bulk load the servers flush and vacuum for a while (the disk busy,
# every engine operation slower): let them settle, so that a run measures the
# window, not the load's aftermath.
settle() { psql_ "VACUUM ANALYZE" >/dev/null; psql_ "CHECKPOINT" >/dev/null || log "CHECKPOINT refused"; maria_ "FLUSH TABLES" >/dev/null; sync; sleep 5; }

# late_change: in the background, waits until the run is held at its `armed`
# step (pre-pass done, file pass and databases armed), writes BENCH_LATE_MB of
# new files into the app's volume, and lets the run go on: the window's pass
# has that much to read and store.
late_change() {
  local dir; dir=$(docker volume inspect -f '{{.Mountpoint}}' "${project}_restic-cache")/pause
  rm -rf "$dir"; mkdir -p "$dir"
  ( for _ in $(seq 1200); do [ -e "$dir/armed" ] && break; sleep 0.05; done
    docker exec "$(c app)" sh -c "head -c ${BENCH_LATE_MB:-10}M /dev/urandom > /data/bench/late-\$(date +%s%N)"
    rm -f "$dir/armed" ) &
  late_pid=$!
}
# uplink RATE|off: a token bucket on the sidecar's interface (its egress:
# what goes up to the repository server), or none.
uplink() {
  local pid; pid=$(docker inspect -f '{{.State.Pid}}' "$(c backup)")
  if [ "$1" = off ]; then nsenter -t "$pid" -n tc qdisc del dev eth0 root 2>/dev/null || true
  else nsenter -t "$pid" -n tc qdisc replace dev eth0 root tbf rate "$1" burst 32kb latency 1s; fi
}

# run MODE: one backup; prints "window_seconds run_seconds" (window from engine events).
run() {
  local app; app=$(c app)
  docker events --filter "container=$app" --format '{{.TimeNano}} {{.Action}}' >"$work/events" &
  local ev=$!; sleep 1
  local t0; t0=$(date +%s.%N)
  local held=() late_pid=
  if [ "${LATE:-0}" = 1 ]; then late_change; held=(-e STACKSHOT_TEST_PAUSE_DIR=/cache/pause -e STACKSHOT_TEST_PAUSE_AT=armed); fi
  docker exec -e STOP_WINDOW="$1" -e WINDOW_FILE_PASS="${2:-rustic}" "${held[@]}" "$(c backup)" stackshot backup --json >"$work/report.json"
  [ -z "$late_pid" ] || wait "$late_pid"
  local t1; t1=$(date +%s.%N)
  sleep 1; kill $ev; wait $ev 2>/dev/null || true
  python3 - "$work/events" "$t0" "$t1" <<'PY'
import sys
ev=[l.split(None, 1) for l in open(sys.argv[1]) if l.strip()]
ev=[(t, a.strip()) for t, a in ev]   # an exec's action has spaces: "exec_create: sh -c …"
die=min(int(t) for t,a in ev if a=="die"); start=max(int(t) for t,a in ev if a=="start")
print(f"{(start-die)/1e9:.2f} {float(sys.argv[3])-float(sys.argv[2]):.2f}")
PY
}

# runs MODE [PASS] $reps times, 1 % churn before each; prints
# "median_window median_run samples" (samples: the windows, comma-separated).
measure() {
  local out=()
  for _ in $(seq "$reps"); do churn; out+=("$(run "$@")"); done
  printf '%s\n' "${out[@]}" | python3 -c '
import statistics, sys
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
w = statistics.median(r[0] for r in rows); t = statistics.median(r[1] for r in rows)
print(f"{w:.2f} {t:.2f} " + ",".join(f"{r[0]:.2f}" for r in rows))'
}

log "stack: $files files, $files_mb MB; PostgreSQL ~$pg_mb MB; MariaDB ~$maria_mb MB; $reps runs each"
files_to "$files" "$files_mb" base
pg_to "$pg_mb"; maria_to "$maria_mb"; settle
run short >/dev/null   # a first backup: the repository and the parents exist
read -r full_w full_t full_s < <(measure full)
read -r short_w short_t short_s < <(measure short)
if [ "$remote" != local ]; then
  ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
  printf '\n| run on %s (median of %s) | stop window (app die → start) | samples | whole run |\n|---|---|---|---|\n' "$remote" "$reps"
  printf '| full | %s s | %s | %s s |\n' "$full_w" "${full_s//,/ · }" "$full_t"
  printf '| short | %s s | %s | %s s |\n' "$short_w" "${short_s//,/ · }" "$short_t"
  late=${BENCH_LATE_MB:-10} rate=${BENCH_UPLINK:-8mbit}
  read -r late_w late_t late_s < <(LATE=1 measure short)
  uplink "$rate"
  read -r slow_w slow_t slow_s < <(LATE=1 measure short)
  read -r slowr_w slowr_t slowr_s < <(LATE=1 measure short restic)
  uplink off
  printf '| short, %s MB written after the pre-pass | %s s | %s | %s s |\n' "$late" "$late_w" "${late_s//,/ · }" "$late_t"
  printf '| the same, uplink %s | %s s | %s | %s s |\n' "$rate" "$slow_w" "${slow_s//,/ · }" "$slow_t"
  printf '| the same, restic file pass (uploads inside the window) | %s s | %s | %s s |\n' "$slowr_w" "${slowr_s//,/ · }" "$slowr_t"
  printf '\nshort / full window on %s: %s (asked: <= 0.1)\n' "$remote" "$(ratio "$short_w" "$full_w")"
  printf 'whole run on %s, short / full: %s (asked: <= 1.3)\n' "$remote" "$(ratio "$short_t" "$full_t")"
  printf 'window with %s MB late, uplink %s / unthrottled: %s (asked: <= 1.3)\n' "$late" "$rate" "$(ratio "$slow_w" "$late_w")"
  printf 'window with %s MB late, uplink %s, spooled / restic pass uploading inside: %s\n' "$late" "$rate" "$(ratio "$slow_w" "$slowr_w")"
  exit 0
fi
read -r restic_w restic_t restic_s < <(measure short restic)
log "databases x4"
pg_to $((pg_mb * 4)); maria_to $((maria_mb * 4)); settle
read -r db4_w db4_t db4_s < <(measure short)
psql_ "TRUNCATE big"; maria_ "TRUNCATE big"; pg_to "$pg_mb"; maria_to "$maria_mb"; settle
read -r base_w base_t base_s < <(measure short)
log "files x4"
files_to $((files * 3)) $((files_mb * 3)) more; settle
run short >/dev/null
read -r f4_w f4_t f4_s < <(measure short)

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
row() { printf '| %s | %s s | %s | %s s |\n' "$1" "$2" "${4//,/ · }" "$3"; }
printf '\n| run (median of %s) | stop window (app die → start) | samples | whole run |\n|---|---|---|---|\n' "$reps"
row full "$full_w" "$full_t" "$full_s"
row short "$short_w" "$short_t" "$short_s"
row "short, restic file pass" "$restic_w" "$restic_t" "$restic_s"
row "short, databases x4" "$db4_w" "$db4_t" "$db4_s"
row "short, before the files grow" "$base_w" "$base_t" "$base_s"
row "short, files x4" "$f4_w" "$f4_t" "$f4_s"
printf '\nshort / full window: %s (asked: <= 0.1)\n' "$(ratio "$short_w" "$full_w")"
printf 'short, armed rustic pass / restic pass: %s\n' "$(ratio "$short_w" "$restic_w")"
printf 'short, databases x4 / short: %s (asked: <= 1.2)\n' "$(ratio "$db4_w" "$short_w")"
printf 'short, files x4 / short before the files grew: %s (asked: <= 1.3)\n' "$(ratio "$f4_w" "$base_w")"
printf 'whole run, short / full: %s\n' "$(ratio "$short_t" "$full_t")"
