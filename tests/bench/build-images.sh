#!/usr/bin/env bash
# Builds stackshot's local test images without any container registry:
# a Debian bookworm root made with debootstrap (mirror read from this machine's
# apt sources), imported with `docker import`.
#
#   stackshot-test/base:local      ca-certificates, tzdata, restic (runtime for the sidecar and app)
#   stackshot-test/postgres:local  + PostgreSQL, entrypoint honouring the official image's variables
#   stackshot-test/mariadb:local   + MariaDB, likewise
#   stackshot-test/redis:local     the same root (with sqlite3 too), running redis-server (data in /data)
#   stackshot-test/nginx:local     the same image, as a socket proxy (nginx; its command given by the test)
#   stackshot-test/rust-base:local  (only with --rust) gcc and libc headers, the
#                                   base of CI's stand-in for the Rust image
#
# Every image is also tagged with a hash of its inputs; when that tag exists the
# build is skipped, so a second run costs a few seconds.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
suite=bookworm
base_pkgs=ca-certificates,tzdata,restic,procps
db_pkgs=$base_pkgs,postgresql,postgresql-client,mariadb-server,mariadb-client,redis-server,redis-tools,sqlite3,nginx-light
rust_pkgs=ca-certificates,gcc,libc6-dev
with_rust=false; [ "${1:-}" = --rust ] && with_rust=true

log() { printf 'build-images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is the daemon running, and may this user use it?)"

inputs_hash() {
  { cat "${BASH_SOURCE[0]}" "$here"/images/*; echo "$suite $*"; } | sha256sum | cut -c1-16
}

mirror() {
  local m
  m=$(apt-get indextargets --format '$(SITE) $(CODENAME)' 'Created-By: Packages' 2>/dev/null \
      | awk -v s="$suite" '$2 == s { print $1; exit }')
  [ -n "$m" ] || die "no '$suite' source in this machine's apt sources; run 'apt-get update' or add one"
  printf '%s' "$m"
}

# rootfs DIR PACKAGES: debootstrap a minimal bookworm root into DIR.
rootfs() {
  local dir=$1 pkgs=$2
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
  rm -rf "$dir"; mkdir -p "$dir"
  log "debootstrap $suite into $dir ($pkgs)"
  if ! debootstrap --variant=minbase --include="$pkgs" "$suite" "$dir" "$(mirror)" >"$dir.log" 2>&1; then
    tail -n 20 "$dir.log" >&2
    die "debootstrap failed (full log: $dir.log)"
  fi
  # Keep the image small and free of the host's identity.
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/tmp/*
  : >"$dir/etc/resolv.conf"; : >"$dir/etc/hostname"
}

# import DIR IMAGE CHANGES...: tar DIR into IMAGE.
import() {
  local dir=$1 image=$2; shift 2
  local args=()
  for c in "$@"; do args+=(--change "$c"); done
  tar --numeric-owner -C "$dir" -c . | docker import "${args[@]}" - "$image" >/dev/null
  log "imported $image"
}

have() { docker image inspect "$1" >/dev/null 2>&1; }

work=${STACKSHOT_BENCH_WORK:-$here/../../target/bench-rootfs}
mkdir -p "$work"
work=$(cd "$work" && pwd)

base_hash=$(inputs_hash base "$base_pkgs")
db_hash=$(inputs_hash db "$db_pkgs")
base=stackshot-test/base:$base_hash
pg=stackshot-test/postgres:$db_hash
maria=stackshot-test/mariadb:$db_hash
redis=stackshot-test/redis:$db_hash
env_path='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
lang='ENV LANG=C.UTF-8'

pids=()
if ! have "$base"; then
  ( rootfs "$work/base" "$base_pkgs" && import "$work/base" "$base" "$env_path" "$lang" 'CMD ["/bin/bash"]' ) &
  pids+=($!)
else
  log "reusing $base"
fi
if ! have "$pg" || ! have "$maria" || ! have "$redis"; then
  (
    rootfs "$work/db" "$db_pkgs"
    install -m 0755 "$here/images/pg-entrypoint" "$work/db/usr/local/bin/pg-entrypoint"
    install -m 0755 "$here/images/mariadb-entrypoint" "$work/db/usr/local/bin/mariadb-entrypoint"
    mkdir -p "$work/db/docker-entrypoint-initdb.d"
    # Like the official images: empty data directories, initialised on first start.
    rm -rf "$work/db/var/lib/mysql" "$work/db/var/lib/postgresql"/* "$work/db/etc/postgresql"
    mkdir -p "$work/db/var/lib/mysql" "$work/db/data"
    import "$work/db" "$pg" "$env_path" "$lang" 'ENV PGDATA=/var/lib/postgresql/data' \
      'ENTRYPOINT ["/usr/local/bin/pg-entrypoint"]' 'EXPOSE 5432'
    import "$work/db" "$maria" "$env_path" "$lang" \
      'ENTRYPOINT ["/usr/local/bin/mariadb-entrypoint"]' 'EXPOSE 3306'
    import "$work/db" "$redis" "$env_path" "$lang" 'WORKDIR /data' \
      'CMD ["redis-server", "--dir", "/data", "--protected-mode", "no"]' 'EXPOSE 6379'
  ) &
  pids+=($!)
else
  log "reusing $pg, $maria and $redis"
fi
rust_hash=$(inputs_hash rust "$rust_pkgs")
rust=stackshot-test/rust-base:$rust_hash
if $with_rust && ! have "$rust"; then
  ( rootfs "$work/rust" "$rust_pkgs" && import "$work/rust" "$rust" "$env_path" "$lang" 'CMD ["/bin/bash"]' ) &
  pids+=($!)
fi
for p in "${pids[@]}"; do wait "$p" || die "an image build failed (see above)"; done
rm -rf "$work/base" "$work/db" "$work/rust"
if $with_rust; then docker tag "$rust" stackshot-test/rust-base:local; fi

docker tag "$base" stackshot-test/base:local
docker tag "$pg" stackshot-test/postgres:local
docker tag "$maria" stackshot-test/mariadb:local
docker tag "$redis" stackshot-test/redis:local
docker tag "$redis" stackshot-test/nginx:local
# Drop images of earlier inputs so the cache does not grow without bound.
for repo in base postgres mariadb redis rust-base; do
  case $repo in base) keep=$base_hash ;; rust-base) keep=$rust_hash ;; *) keep=$db_hash ;; esac
  docker image ls --format '{{.Repository}}:{{.Tag}}' "stackshot-test/$repo" \
    | grep -v -e ":$keep\$" -e ':local$' | xargs -r docker rmi >/dev/null 2>&1 || true
done
log "ready: stackshot-test/{base,postgres,mariadb,redis,nginx}:local"
