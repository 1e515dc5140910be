#!/usr/bin/env bash
# Builds the published Torrust tracker (crate `torrust-tracker` from
# crates.io, unmodified) as a TEST SUBJECT for the online-backup tests, and
# prints the path of its binary on stdout (progress goes to stderr).
#
# The tracker is AGPL-3.0: it is only built and run as a separate process by
# tests/tests/torrust_online.rs. Nothing of ours links it, and none of its
# code is in this repository: `cargo install` fetches the crate from the
# registry into Cargo's own cache and builds it outside the workspace.
#
# The binary is cached under /var/tmp keyed by the version, so only the
# first run builds (about 20 min cold on 2 shared cores; a second run only
# checks the file). Each cache folder is written by one build only: the
# build goes into a temporary root beside it, renamed into place when done,
# so an interrupted build never leaves a cache that looks complete.
#
# Network: `cargo install --locked` uses the crate's own Cargo.lock and
# needs only the crates.io registry. torrust-tracker 3.0.0 has no build
# script that downloads anything (no utoipa-swagger-ui or similar), so no
# feature switch is needed; should a later version need one, pass the
# feature that vendors the asset (as utoipa-swagger-ui's `vendored`) in
# TORRUST_TRACKER_FEATURES and say why here.
#
# Usage: scripts/build-torrust-tracker.sh
# Environment:
#   TORRUST_TRACKER_VERSION   crate version [3.0.0]
#   TORRUST_TRACKER_CACHE     cache root [/var/tmp]
#   TORRUST_TRACKER_FEATURES  extra cargo features []
#   CARGO_BUILD_JOBS          as usual for cargo
set -euo pipefail

version=${TORRUST_TRACKER_VERSION:-3.0.0}
cache=${TORRUST_TRACKER_CACHE:-/var/tmp}
features=${TORRUST_TRACKER_FEATURES:-}
root=$cache/torrust-tracker-$version
bin=$root/bin/torrust-tracker

[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || {
    echo "build-torrust-tracker: TORRUST_TRACKER_VERSION must be a version like 3.0.0, got '$version'" >&2
    exit 2
}

# The binary takes no arguments (run, it starts a tracker), so the cache is
# trusted when the file is there: it only ever appears by the rename below.
if [ -x "$bin" ] && [ -s "$bin" ]; then
    echo "build-torrust-tracker: cached $bin" >&2
    printf '%s\n' "$bin"
    exit 0
fi

command -v cargo >/dev/null || {
    echo "build-torrust-tracker: cargo is not installed" >&2
    exit 1
}
mkdir -p "$cache"
tmp_root=$(mktemp -d "$cache/.torrust-tracker-$version.XXXXXX")
trap 'rm -rf "$tmp_root"' EXIT
# The build folder outlives an interrupted build (a full disk, a killed
# job), so the next run resumes instead of starting cold; removed once the
# binary is in place.
target=$cache/.torrust-tracker-$version-target

args=(install --locked --version "$version" --bin torrust-tracker
    --root "$tmp_root" --target-dir "$target")
[ -n "$features" ] && args+=(--features "$features")
echo "build-torrust-tracker: building torrust-tracker $version from crates.io (cold: about 20 min)" >&2
started=$SECONDS
cargo "${args[@]}" torrust-tracker >&2
echo "build-torrust-tracker: built in $((SECONDS - started)) s" >&2

[ -x "$tmp_root/bin/torrust-tracker" ] || {
    echo "build-torrust-tracker: cargo install produced no $tmp_root/bin/torrust-tracker" >&2
    exit 1
}
chmod 755 "$tmp_root"
rm -rf "$root"
mv "$tmp_root" "$root"
trap - EXIT
rm -rf "$target"
printf '%s\n' "$bin"
