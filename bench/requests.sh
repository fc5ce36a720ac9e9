#!/usr/bin/env bash
# What users of the stack feel during a backup: HTTP requests sent to an app
# (`web`, nginx, published on loopback; tests/stack/web.override.yml) by a
# client on the host at BENCH_RPS requests a second (300 by default), on
# the test bench's stack with the writer (tests/stack/writer.override.yml).
# In one invocation, each BENCH_REPEAT times (3 by default):
#
#   no backup   the load alone, as long as a backup takes (the baseline)
#   stop        a backup with every held container stopped (the default)
#   freeze      the same with FREEZE_DURING_BACKUP=true: every held
#               container frozen (the engine's pause) instead
#
# Prints, for each: the requests sent, how many failed (refused, reset,
# timed out after 30 s, or not the page), the worst latency and the p99, the
# stop window (the run report's), and the ratios the freeze issue asks for.
# Nothing here is asserted: it measures. Needs what scripts/test needs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rps=${BENCH_RPS:-300}
reps=${BENCH_REPEAT:-3}
project=stackshot-bench-requests
export SIDECAR_IMAGE=stackshot-test/sidecar:bench
log() { printf 'bench: %s\n' "$*" >&2; }

bash tests/bench/build-images.sh
# BENCH_BINARY: a stackshot already built (the debug one, say); default:
# the release build. The window is the engine's work, not the binary's.
bin=${BENCH_BINARY:-}
if [ -z "$bin" ]; then cargo build --release --locked -q; bin=target/release/stackshot; fi
bash tests/bench/sidecar-image.sh "$bin" bookworm "$SIDECAR_IMAGE"

work=$(mktemp -d)
export E2E_DIR=$work/stack
mkdir -p "$E2E_DIR/uploads" "$E2E_DIR/secrets"
echo maria-root-secret >"$E2E_DIR/secrets/mariadb-root"
echo bench-password >"$E2E_DIR/secrets/restic-password"
# A fixed host port for web: with a random one, a stop and start moves it.
E2E_WEB_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export E2E_WEB_PORT
compose() {
  docker-compose -p "$project" -f tests/stack/docker-compose.yml \
    -f tests/stack/writer.override.yml -f tests/stack/web.override.yml "$@"
}
cleanup() { compose down -v >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
compose down -v >/dev/null 2>&1 || true
compose up -d --no-build >/dev/null 2>&1
c() { compose ps -q "$1"; }
psql_() { docker exec "$(c postgres)" psql -X -q -U app -d appdb -Atc "$1"; }
maria_() { docker exec -e MYSQL_PWD=maria-root-secret "$(c mariadb)" mariadb -uroot shop -Ne "$1"; }
for _ in $(seq 90); do psql_ 'select 1' >/dev/null 2>&1 && maria_ 'select 1' >/dev/null 2>&1 && break; sleep 1; done
psql_ "CREATE TABLE IF NOT EXISTS writes (id int primary key)"
maria_ "CREATE TABLE IF NOT EXISTS writes (id int primary key) ENGINE=InnoDB"
port=$E2E_WEB_PORT
for _ in $(seq 60); do python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/', timeout=2)" 2>/dev/null && break; sleep 1; done

# The client: threads sending GET / on their own connections, paced to $rps
# in all, until the file $1 exists; prints "sent failed worst_s p99_s".
client() {
  python3 - "$port" "$rps" "$1" <<'PY'
import socket, sys, threading, time, os
port, rps, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
threads = 30
lat, failed, lock = [], [0], threading.Lock()
def get():
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    raw = b""
    while True:
        b = s.recv(65536)
        if not b: break
        raw += b
    s.close()
    return raw.startswith(b"HTTP/1.1 200") and b"frozen-not-down" in raw
def loop():
    period = threads / rps
    nxt = time.monotonic()
    while not os.path.exists(stop):
        t = time.monotonic()
        try: ok = get()
        except OSError: ok = False
        d = time.monotonic() - t
        with lock:
            lat.append(d)
            if not ok: failed[0] += 1
        nxt += period
        time.sleep(max(0, nxt - time.monotonic()))
ts = [threading.Thread(target=loop) for _ in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
lat.sort()
p99 = lat[int(len(lat) * 0.99)] if lat else 0
print(f"{len(lat)} {failed[0]} {lat[-1] if lat else 0:.3f} {p99:.3f}")
PY
}

# run MODE: one measured run under load; prints "sent failed worst p99 window run".
run() {
  local stop=$work/stop; rm -f "$stop"
  client "$stop" >"$work/client" &
  local cl=$!; sleep 1
  local t0 t1 window=0
  t0=$(date +%s.%N)
  case $1 in
    none) sleep "${last_run:-10}" ;;
    stop|freeze)
      local f=false; [ "$1" = freeze ] && f=true
      docker exec -e FREEZE_DURING_BACKUP=$f "$(c backup)" stackshot backup --json >"$work/report.json"
      window=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["window"]["seconds"])' "$work/report.json") ;;
  esac
  t1=$(date +%s.%N)
  sleep 1; touch "$stop"; wait "$cl"
  printf '%s %.2f %.2f\n' "$(cat "$work/client")" "$window" "$(python3 -c "print($t1-$t0)")"
}

# measure MODE: $reps runs; prints "sent failed worst p99 window run" with
# the sums of sent and failed, the worst of worst and p99, the median window
# and run.
measure() {
  local out=()
  for _ in $(seq "$reps"); do out+=("$(run "$1")"); done
  printf '%s\n' "${out[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
print("%d %d %.3f %.3f %.2f %.2f" % (sum(r[0] for r in rows), sum(r[1] for r in rows),
      max(r[2] for r in rows), max(r[3] for r in rows),
      statistics.median(r[4] for r in rows), statistics.median(r[5] for r in rows)))'
}

for _ in $(seq 60); do [ "$(docker exec "$(c writer)" cat /data/counter 2>/dev/null || echo 0)" -ge 10 ] && break; sleep 1; done
log "a first backup: the repository and the parents"
docker exec "$(c backup)" stackshot backup --json >/dev/null
log "$reps runs each at $rps requests/s"
read -r s_sent s_failed s_worst s_p99 s_window s_run < <(measure stop)
read -r f_sent f_failed f_worst f_p99 f_window f_run < <(measure freeze)
last_run=$s_run
read -r n_sent n_failed n_worst n_p99 _ _ < <(measure none)

printf '\n| %s runs each, %s requests/s | requests | failed | worst latency | p99 | stop window (median) | run (median) |\n|---|---|---|---|---|---|---|\n' "$reps" "$rps"
printf '| no backup | %s | %s | %s s | %s s | — | — |\n' "$n_sent" "$n_failed" "$n_worst" "$n_p99"
printf '| stop (default) | %s | %s | %s s | %s s | %s s | %s s |\n' "$s_sent" "$s_failed" "$s_worst" "$s_p99" "$s_window" "$s_run"
printf '| freeze | %s | %s | %s s | %s s | %s s | %s s |\n' "$f_sent" "$f_failed" "$f_worst" "$f_p99" "$f_window" "$f_run"
python3 - "$f_failed" "$f_worst" "$n_worst" "$f_window" "$s_window" <<'PY'
import sys
failed, worst, base, fw, sw = int(sys.argv[1]), *map(float, sys.argv[2:])
added = worst - base
print(f"\nfailed requests with freeze: {failed} (asked: 0) {'met' if failed == 0 else 'NOT met'}")
print(f"worst added latency with freeze: {added:.2f} s against window + 0.5 = {fw + 0.5:.2f} s {'met' if added <= fw + 0.5 else 'NOT met'}")
print(f"freeze window / stop window: {fw / sw:.2f} (asked: <= 0.5) {'met' if fw <= 0.5 * sw else 'NOT met'}")
PY
