#!/usr/bin/env bash
# stackshot benchmark, on the test bench (real engine, PostgreSQL, restic).
# Prints stackshot against a baseline doing the same work in the same invocation:
#
#   dump      stackshot's streamed dump  vs  `docker exec <db> pg_dumpall > file`
#   memory    stackshot's peak RSS with a database of 1/4 size and of full size
#   snapshot  the atomic snapshot phase   vs  plain `restic backup` of the same data
#
#   BENCH_DB_MB=1024 BENCH_FILES_MB=512 bench/run.sh
#
# Needs what scripts/test needs (root, Docker engine, docker-compose). Takes a few minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

db_mb=${BENCH_DB_MB:-1024}
files_mb=${BENCH_FILES_MB:-512}
project=stackshot-bench
export SIDECAR_IMAGE=stackshot-test/sidecar:bench
log() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }

bash tests/bench/build-images.sh
cargo build --release --locked -q
# The image users run, with restic 0.14: the restic of the baseline too.
bash tests/bench/sidecar-image.sh target/release/stackshot bookworm "$SIDECAR_IMAGE"

work=$(mktemp -d)
export E2E_DIR=$work/stack
mkdir -p "$E2E_DIR/uploads" "$E2E_DIR/secrets" "$work/dumps"
echo maria-root-secret >"$E2E_DIR/secrets/mariadb-root"
echo bench-password >"$E2E_DIR/secrets/restic-password"
compose() { docker-compose -p "$project" -f tests/stack/docker-compose.yml "$@"; }
cleanup() {
  compose down -v >/dev/null 2>&1 || true
  docker volume rm -f "$project-baseline-repo" "$project-baseline-cache" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
compose down -v >/dev/null 2>&1 || true
compose up -d --no-build >/dev/null 2>&1
c() { compose ps -q "$1"; }
psql_() { docker exec "$(c postgres)" psql -X -q -U app -d appdb -Atc "$1"; }
for _ in $(seq 90); do psql_ 'select 1' >/dev/null 2>&1 && break; sleep 1; done

rows() { echo $(( $1 * 1024 * 1024 / 250 )); }
grow_to() { # grow table big to about $1 MB of dump
  psql_ "CREATE TABLE IF NOT EXISTS big (id bigint, payload text)"
  local have; have=$(psql_ "select coalesce(max(id), 0) from big")
  psql_ "INSERT INTO big SELECT g, md5(g::text) || repeat('x', 200) FROM generate_series($((have + 1)), $(rows "$1")) g"
}
backup() { # $1: repository path inside the sidecar → report JSON on stdout
  docker exec -e RESTIC_REPOSITORY="$1" "$(c backup)" stackshot backup --json
}
jq_() { jq -r "$@"; }

log "files: ${files_mb} MB of random data in the app's volume"
docker exec "$(c app)" sh -c "mkdir -p /data/bench && for i in \$(seq $((files_mb / 8))); do head -c 8M /dev/urandom > /data/bench/f\$i; done"

log "database: about $((db_mb / 4)) MB, then stackshot backup"
grow_to $((db_mb / 4))
small=$(backup /repository/small)
[ "$(jq_ .result <<<"$small")" = success ] || { echo "$small" >&2; exit 1; }

log "database: about ${db_mb} MB"
grow_to "$db_mb"

log "baseline: docker exec pg_dumpall > file"
t0=$(now)
docker exec "$(c postgres)" pg_dumpall -U app >"$work/dumps/postgres-all.sql"
t1=$(now)
base_bytes=$(stat -c %s "$work/dumps/postgres-all.sql")
base_secs=$(echo "$t1 - $t0" | bc -l)

log "stackshot backup (fresh repository)"
full=$(backup /repository/full)
[ "$(jq_ .result <<<"$full")" = success ] || { echo "$full" >&2; exit 1; }
ss_bytes=$(jq_ '.dumps[] | select(.service == "postgres") | .bytes' <<<"$full")
ss_secs=$(jq_ '.dumps[] | select(.service == "postgres") | .seconds' <<<"$full")
snap_secs=$(jq_ '.phases[] | select(.name == "snapshot") | .seconds' <<<"$full")
snap_bytes=$(jq_ '.snapshots[0].bytes_processed' <<<"$full")
window_secs=$(jq_ '.window.seconds' <<<"$full")
rss_small=$(jq_ .peak_rss_bytes <<<"$small")
rss_full=$(jq_ .peak_rss_bytes <<<"$full")
small_bytes=$(jq_ '.dumps[] | select(.service == "postgres") | .bytes' <<<"$small")

log "baseline: plain restic backup of the same volumes and dump (fresh repository)"
docker volume create "$project-baseline-repo" >/dev/null
docker volume create "$project-baseline-cache" >/dev/null
restic_() {
  docker run --rm -e RESTIC_PASSWORD=bench -e RESTIC_REPOSITORY=/repo -e RESTIC_CACHE_DIR=/cache \
    -v "$project-baseline-repo:/repo" -v "$project-baseline-cache:/cache" \
    -v "${project}_app-data:/volumes/app/data:ro" -v "$E2E_DIR/uploads:/volumes/app/uploads:ro" \
    -v "${project}_legacy-data:/volumes/legacy/srv/legacy:ro" \
    -v "$PWD/tests/stack/initdb/postgres:/volumes/postgres/docker-entrypoint-initdb.d:ro" \
    -v "$work/dumps:/databases:ro" stackshot-test/base:local restic "$@"
}
restic_ init -q >/dev/null
t0=$(now)
restic_ backup -q /volumes /databases >/dev/null
t1=$(now)
rb_secs=$(echo "$t1 - $t0" | bc -l)

mb() { echo "scale=1; $1 / 1048576" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
printf '\nstackshot benchmark (restic %s, PostgreSQL dump %s MB, files %s MB)\n\n' \
  "$(docker run --rm stackshot-test/base:local restic version | awk '{print $2}')" "$(mb "$ss_bytes")" "$files_mb"
printf '%-34s %14s %14s %8s\n' "" stackshot baseline ratio
printf '%-34s %11s MB %11s MB\n' "dump size" "$(mb "$ss_bytes")" "$(mb "$base_bytes")"
ss_tp=$(echo "$ss_bytes / $ss_secs" | bc -l); base_tp=$(echo "$base_bytes / $base_secs" | bc -l)
printf '%-34s %9s MB/s %9s MB/s %8s  (stackshot/baseline, higher is better; required >= 0.90)\n' \
  "dump throughput" "$(mb "$ss_tp")" "$(mb "$base_tp")" "$(ratio "$ss_tp" "$base_tp")"
printf '%-34s %11s MB %11s MB %8s  (full/quarter database; flat is ~1.0; required < 64 MB)\n' \
  "stackshot peak RSS (1/4 vs full db)" "$(mb "$rss_full")" "$(mb "$rss_small")" "$(ratio "$rss_full" "$rss_small")"
printf '%-34s %12ss %12ss %8s  (stackshot/baseline, lower is better; %s MB)\n' \
  "snapshot phase vs restic backup" "$(printf %.1f "$snap_secs")" "$(printf %.1f "$rb_secs")" "$(ratio "$snap_secs" "$rb_secs")" "$(mb "$snap_bytes")"
printf '%-34s %12ss\n' "stop window (dump + snapshot)" "$(printf %.1f "$window_secs")"
printf '%-34s %11s MB\n' "quarter-size dump" "$(mb "$small_bytes")"
