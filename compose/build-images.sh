#!/usr/bin/env bash
# build-images.sh: the offline way to build both images.
#
# The Dockerfile's builder stage needs rust:1-bookworm from a registry and
# crates.io from inside the build. This script needs neither: it builds the
# two binaries on the host (a Debian 12 host, like the bookworm runtime
# image, so the glibc matches), puts them in DIR/out/, and hands DIR to the
# image build as the build context named `builder`, which replaces the
# builder stage. Only the runtime stage's `apt-get install` needs the
# network (a Debian mirror).
#
# Usage: compose/build-images.sh [--debug] [--bin-dir DIR]
#   --debug        use the debug build (faster to compile; for tests)
#   --bin-dir DIR  take reference-tracker and maintenance-sidecar from DIR
#                  instead of building them
# Environment: ENGINE_CMD (podman or docker; default: podman if present),
#   TRACKER_IMAGE, SIDECAR_IMAGE (default maintenance-window/...:latest),
#   APP_UID, APP_GID (build args, default 1000), BUILD_OPTS (more options
#   for the engine's build, e.g. "--ulimit nproc=4096:4096" on hosts where
#   the engine cannot raise rlimits).
# With Docker this needs BuildKit (`docker buildx`, the default builder of
# current Docker) for --build-context.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
profile=release
bin_dir=""
while [ $# -gt 0 ]; do
    case $1 in
    --debug) profile=debug ;;
    --bin-dir)
        bin_dir=${2:?--bin-dir needs a folder}
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "build-images.sh: unknown argument $1 (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done

if [ -z "${ENGINE_CMD:-}" ]; then
    if command -v podman >/dev/null; then ENGINE_CMD=podman; else ENGINE_CMD=docker; fi
fi
read -r -a engine <<<"$ENGINE_CMD"
read -r -a opts <<<"${BUILD_OPTS:-}"
TRACKER_IMAGE=${TRACKER_IMAGE:-maintenance-window/reference-tracker:latest}
SIDECAR_IMAGE=${SIDECAR_IMAGE:-maintenance-window/maintenance-sidecar:latest}

if [ -z "$bin_dir" ]; then
    args=(build --locked -p reference-tracker -p maintenance-sidecar)
    [ "$profile" = release ] && args+=(--release)
    echo "build-images.sh: cargo ${args[*]}"
    (cd "$REPO" && cargo "${args[@]}")
    bin_dir=$REPO/target/$profile
fi

ctx=$(mktemp -d "${TMPDIR:-/tmp}/builder-context.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
for bin in reference-tracker maintenance-sidecar; do
    [ -x "$bin_dir/$bin" ] || {
        echo "build-images.sh: $bin_dir/$bin is missing or not executable" >&2
        exit 1
    }
    install -D -m 0755 "$bin_dir/$bin" "$ctx/out/$bin"
done

build() { # TARGET IMAGE
    echo "build-images.sh: ${engine[*]} build --target $1 -t $2 (builder context: $bin_dir)"
    "${engine[@]}" build "${opts[@]}" --build-context "builder=$ctx" \
        --build-arg "APP_UID=${APP_UID:-1000}" --build-arg "APP_GID=${APP_GID:-1000}" \
        -f "$REPO/compose/Dockerfile" --target "$1" -t "$2" "$REPO"
}
build tracker "$TRACKER_IMAGE"
build sidecar "$SIDECAR_IMAGE"
echo "build-images.sh: built $TRACKER_IMAGE and $SIDECAR_IMAGE"
