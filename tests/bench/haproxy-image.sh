#!/usr/bin/env bash
# Builds stackshot-test/haproxy:local, the socket proxy of tests/e2e_proxy.rs:
# HAProxy from Debian trixie (3.0), debootstrapped from the mirror this
# machine's apt sources name for bookworm, imported with `docker import`.
# Not bookworm's HAProxy 2.6: it drops the upgrade of a request with a body,
# which starting an exec is (haproxy/haproxy#2684, fixed in 3.0.5).
# Tagged with a hash of this script; when that tag exists the build is skipped.
set -euo pipefail

suite=trixie
log() { printf 'haproxy-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

hash=$( { cat "${BASH_SOURCE[0]}"; echo "$suite"; } | sha256sum | cut -c1-16)
image=stackshot-test/haproxy:$hash
if docker image inspect "$image" >/dev/null 2>&1; then
  docker tag "$image" stackshot-test/haproxy:local
  log "reusing $image"
  exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap is not installed (scripts/install-test-deps)"
[ -e "/usr/share/debootstrap/scripts/$suite" ] || die "this debootstrap does not know $suite"
mirror=$(apt-get indextargets --format '$(SITE) $(CODENAME)' 'Created-By: Packages' 2>/dev/null \
  | awk '$2 == "bookworm" { print $1; exit }')
[ -n "$mirror" ] || die "no bookworm source in this machine's apt sources to take the mirror from"

root=$(mktemp -d)
trap 'rm -rf "$root" "$root.log"' EXIT
log "debootstrap $suite into $root (haproxy)"
if ! debootstrap --variant=minbase --include=haproxy "$suite" "$root" "$mirror" >"$root.log" 2>&1; then
  tail -n 20 "$root.log" >&2
  die "debootstrap failed"
fi
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
: >"$root/etc/resolv.conf"; : >"$root/etc/hostname"
tar --numeric-owner -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["haproxy", "-db", "-f", "/etc/haproxy/stackshot-proxy.cfg"]' \
  - "$image" >/dev/null
docker tag "$image" stackshot-test/haproxy:local
docker image ls --format '{{.Repository}}:{{.Tag}}' stackshot-test/haproxy \
  | grep -v -e ":$hash\$" -e ':local$' | xargs -r docker rmi >/dev/null 2>&1 || true
log "imported $image ($(haproxy_v=$(docker run --rm stackshot-test/haproxy:local haproxy -v | head -n1); echo "$haproxy_v"))"
