#!/usr/bin/env bash
# sidecar-image.sh BINARY: builds stackshot-test/sidecar:local, the sidecar
# of the end-to-end tests: tests/bench/Dockerfile.prebuilt on the bench's
# base image (stackshot-test/base:local, from build-images.sh) with BINARY as
# /usr/local/bin/stackshot. The image it replaces is removed, so untagged
# copies do not pile up. scripts/test runs it once before the tests; a test
# binary run on its own (cargo test --test …) runs it through common::bench().
set -euo pipefail
bin=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tag=stackshot-test/sidecar:local
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/target/release"
cp "$bin" "$ctx/target/release/stackshot"
cp "$here/Dockerfile.prebuilt" "$ctx/Dockerfile"
previous=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
docker build -q --build-arg RUNTIME_IMAGE=stackshot-test/base:local -t "$tag" "$ctx" >/dev/null
now=$(docker image inspect -f '{{.Id}}' "$tag")
if [ -n "$previous" ] && [ "$previous" != "$now" ]; then
  docker rmi "$previous" >/dev/null 2>&1 || true
fi
echo "sidecar-image: built $tag from $bin" >&2
