#!/usr/bin/env bash
# Builds stackshot-test/node:local, the second swarm node of
# tests/e2e_swarm_nodes.rs: Debian bookworm with Debian's docker.io (the
# engine, containerd, runc) and iptables, debootstrapped from the mirror this
# machine's apt sources name, imported with `docker import`. The test runs it
# privileged, as an engine of its own that joins the test engine's swarm.
# Tagged with a hash of this script; when that tag exists the build is skipped.
set -euo pipefail

suite=bookworm
pkgs=docker.io,iptables,ca-certificates,procps,iproute2
log() { printf 'node-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

hash=$( { cat "${BASH_SOURCE[0]}"; echo "$suite $pkgs"; } | sha256sum | cut -c1-16)
image=stackshot-test/node:$hash
if docker image inspect "$image" >/dev/null 2>&1; then
  docker tag "$image" stackshot-test/node:local
  log "reusing $image"
  exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap is not installed (scripts/install-test-deps)"
mirror=$(apt-get indextargets --format '$(SITE) $(CODENAME)' 'Created-By: Packages' 2>/dev/null \
  | awk -v s="$suite" '$2 == s { print $1; exit }')
[ -n "$mirror" ] || die "no $suite source in this machine's apt sources to take the mirror from"

root=$(mktemp -d)
trap 'rm -rf "$root" "$root.log"' EXIT
log "debootstrap $suite into $root ($pkgs)"
if ! debootstrap --variant=minbase --include="$pkgs" "$suite" "$root" "$mirror" >"$root.log" 2>&1; then
  tail -n 20 "$root.log" >&2
  die "debootstrap failed"
fi
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
: >"$root/etc/resolv.conf"; : >"$root/etc/hostname"
tar --numeric-owner -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["dockerd"]' \
  - "$image" >/dev/null
docker tag "$image" stackshot-test/node:local
docker image ls --format '{{.Repository}}:{{.Tag}}' stackshot-test/node \
  | grep -v -e ":$hash\$" -e ':local$' | xargs -r docker rmi >/dev/null 2>&1 || true
log "imported $image"
