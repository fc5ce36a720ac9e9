#!/usr/bin/env bash
# noshell-image.sh BINARY TAG: imports a `FROM scratch` image holding only
# BINARY (its entrypoint) and the shared libraries ldd names
# (scripts/scratch-tree): no shell, no coreutils, no sqlite3. The SQLite
# worker test runs its app in it.
set -euo pipefail
bin=$1
tag=$2
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
sh "$(dirname "${BASH_SOURCE[0]}")/../../scripts/scratch-tree" "$root" "$bin"
mkdir -p "$root/data"
tar -C "$root" -c . |
    docker import -c "ENTRYPOINT [\"/usr/local/bin/$(basename "$bin")\"]" - "$tag" >/dev/null
echo "noshell-image: imported $tag ($(find "$root" -type f | wc -l) files)"
