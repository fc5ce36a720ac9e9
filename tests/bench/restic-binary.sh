#!/usr/bin/env bash
# restic-binary.sh SUITE: prints the path of Debian SUITE's restic binary,
# fetching it first when it is not cached under target/bench-restic/.
#
#   bookworm  restic 0.14, what the bench's base image carries
#   trixie    restic 0.18.0
#   forky     restic 0.19 (Debian testing: the version moves with it), what
#             the stackshot image carries (the Dockerfile pins 0.19.1)
#
# apt fetches and verifies the package (the archive's signed index) from the
# mirror this machine's apt sources name for bookworm, with a private list
# and cache directory: the machine's own apt state is not touched. The
# binary loads only libc; tests/bench/sidecar-image.sh puts it, with the
# libraries ldd names, on the `FROM scratch` tree the Dockerfile builds.
set -euo pipefail
suite=${1:?usage: restic-binary.sh bookworm|trixie|forky}
log() { printf 'restic-binary: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$root/target/bench-restic/$suite
if [ -x "$out/restic" ]; then
  echo "$out/restic"
  exit 0
fi
mirror=$(apt-get indextargets --format '$(SITE) $(CODENAME)' 'Created-By: Packages' 2>/dev/null \
  | awk '$2 == "bookworm" { print $1; exit }')
[ -n "$mirror" ] || die "no bookworm source in this machine's apt sources to take the mirror from"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/deb"
echo "deb $mirror $suite main" >"$tmp/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$tmp/sources.list"
  -o "Dir::Etc::SourceParts=/nonexistent"
  -o "Dir::State::Lists=$tmp/lists"
  -o "Dir::Cache=$tmp/cache"
  -o "APT::Sandbox::User=root"
)
apt-get "${apt_opts[@]}" -q update >"$tmp/update.log" 2>&1 || {
  tail -n 20 "$tmp/update.log" >&2
  die "apt-get update of $suite failed"
}
(cd "$tmp/deb" && apt-get "${apt_opts[@]}" -q download restic >"$tmp/download.log" 2>&1) || {
  tail -n 20 "$tmp/download.log" >&2
  die "apt-get download restic ($suite) failed"
}
deb=$(ls "$tmp"/deb/restic_*.deb)
dpkg-deb -x "$deb" "$tmp/x"
mkdir -p "$out"
# A name of its own: two scripts may fetch the same suite at the same time.
cp "$tmp/x/usr/bin/restic" "$out/restic.partial.$$"
mv "$out/restic.partial.$$" "$out/restic"
log "$(basename "$deb") -> $out/restic ($("$out/restic" version | head -n1))"
echo "$out/restic"
