#!/usr/bin/env bash
# Prints the diff of vendor/rustic_core against the rustic_core 0.13.0 that
# crates.io publishes (cargo's copy, fetched when it is not there). CI checks that
# vendor/rustic_core.patch is this diff (.ci/run), so the patch file
# never drifts from the code. Usage: vendor/diff.sh > vendor/rustic_core.patch
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
registry=${CARGO_HOME:-$HOME/.cargo}/registry/src
orig=$(ls -d "$registry"/*/rustic_core-0.13.0 2>/dev/null | head -n 1 || true)
if [ -z "$orig" ]; then
  # The [patch] keeps cargo from fetching the published crate: a throwaway
  # project that depends on it does.
  mkdir -p "$tmp/fetch/src" && touch "$tmp/fetch/src/lib.rs"
  printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2024"\n[dependencies]\nrustic_core = "=0.13.0"\n' >"$tmp/fetch/Cargo.toml"
  (cd "$tmp/fetch" && cargo fetch -q --target "$(rustc -vV | sed -n 's/^host: //p')")
  orig=$(ls -d "$registry"/*/rustic_core-0.13.0 | head -n 1)
fi
cp -r "$orig" "$tmp/a"
rm -f "$tmp/a/.cargo-ok" "$tmp/a/.cargo_vcs_info.json" "$tmp/a/Cargo.lock" "$tmp/a/Cargo.toml.orig"
cp -r rustic_core "$tmp/b"
cd "$tmp"
# git names each file a/a/… or a/b/…: the headers name them a/… and b/….
{ git diff --no-index --no-color a b || [ $? = 1 ]; } |
  sed -E '/^(diff --git|--- |\+\+\+ )/ s#(^| )([ab])/[ab]/#\1\2/#g'

