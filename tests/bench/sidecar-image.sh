#!/usr/bin/env bash
# sidecar-image.sh BINARY [SUITE [TAG]]: builds the sidecar of the end-to-end
# tests the way the Dockerfile builds the image users run: the `FROM scratch`
# tree of scripts/scratch-tree (no shell) with BINARY as
# /usr/local/bin/stackshot and Debian SUITE's restic (tests/bench/restic-binary.sh;
# default forky, restic 0.19, the version the Dockerfile pins), under the
# Dockerfile's own runtime stage (its lines from `FROM scratch AS runtime` on,
# the tree copied from the build context instead of the `tree` stage). Only
# the Rust stage is left out: BINARY is built on the host, so that the tests
# do not compile the release once more.
#
# TAG defaults to stackshot-test/sidecar:local. The image it replaces is
# removed, so untagged copies do not pile up. scripts/test runs it before the
# tests (and again with SUITE bookworm, restic 0.14, for the key tests);
# a test binary run on its own (cargo test --test …) runs it through
# common::bench().
set -euo pipefail
bin=$1
suite=${2:-forky}
tag=${3:-stackshot-test/sidecar:local}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
restic=$(bash "$here/restic-binary.sh" "$suite")
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
sh "$here/../../scripts/scratch-tree" "$ctx/tree" "$bin" "$restic"
[ "$(basename "$bin")" = stackshot ] || mv "$ctx/tree/usr/local/bin/$(basename "$bin")" "$ctx/tree/usr/local/bin/stackshot"
mkdir "$ctx/tree/cache"
# The Dockerfile's runtime stage, word for word but for where the tree comes from.
stage=$(sed -n '/^FROM scratch AS runtime$/,$p' "$here/../../Dockerfile")
grep -qx 'COPY --from=tree /tree/ /' <<<"$stage" || {
  echo "sidecar-image: the Dockerfile's runtime stage no longer copies the tree as 'COPY --from=tree /tree/ /'" >&2
  exit 1
}
sed 's|^COPY --from=tree /tree/ /$|COPY tree/ /|' <<<"$stage" >"$ctx/Dockerfile"
previous=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
docker build -q -t "$tag" "$ctx" >/dev/null
now=$(docker image inspect -f '{{.Id}}' "$tag")
if [ -n "$previous" ] && [ "$previous" != "$now" ]; then
  docker rmi "$previous" >/dev/null 2>&1 || true
fi
version=$("$restic" version | cut -d' ' -f2)
pinned=$(sed -n 's|^ARG RESTIC_IMAGE=restic/restic:||p' "$here/../../Dockerfile")
if [ "$suite" = forky ] && [ "$version" != "$pinned" ]; then
  echo "sidecar-image: note: Debian forky's restic is now $version, the Dockerfile pins $pinned: the tests run $version" >&2
fi
echo "sidecar-image: built $tag from $bin with restic $version ($suite)" >&2
