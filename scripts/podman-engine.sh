# shellcheck shell=bash
# The podman set-up shared by the real-container tests
# (scripts/test-containers.sh, scripts/test-kubernetes.sh): sourced, never
# run. It defines:
#   podman_engine_setup ENGINE   writes the engine's config into ENGINE (its
#       own image store, network config, runc, cgroupfs, explicit nofile and
#       nproc ulimits) and exports CONTAINERS_CONF, CONTAINERS_STORAGE_CONF,
#       CONTAINERS_REGISTRIES_CONF; sets `nofile` and `nproc`;
#   podman_base_image CACHE_DIR WORK   imports debian:bookworm-slim from a
#       debootstrap tarball cached in CACHE_DIR (made on the first run from
#       the machine's configured Debian mirror, or DEBIAN_MIRROR);
#   podman_build_images LOG PROFILE   builds both binaries on the host
#       (debug or release) and both images through compose/build-images.sh.
#   step, die, check   the tests' progress lines (time since the start) and
#       failure exit, naming the calling script.
# The caller defines REPO and cleans up (podman system reset, its work
# folder).

T0=$SECONDS
step() { printf '[%s +%ss] %s\n' "$(date -u +%H:%M:%S)" "$((SECONDS - T0))" "$*"; }
die() {
    printf '%s: FAIL: %s\n' "$(basename "$0")" "$*" >&2
    exit 1
}
check() { # description, then the command
    local what=$1
    shift
    if "$@"; then
        step "ok: $what"
    else
        die "$what"
    fi
}

# Why runc and explicit ulimits: crun fails under this kind of host's
# hybrid cgroups (v1 controllers + v2 unified), and the runtime cannot
# raise rlimits, so every container asks for what the host allows.
podman_engine_setup() {
    local engine=$1 hard_nofile hard_nproc
    mkdir -p "$engine"/{graph,run,cni,tmp,volumes}
    hard_nofile=$(ulimit -Hn)
    hard_nproc=$(ulimit -Hu)
    [ "$hard_nofile" = unlimited ] && hard_nofile=1048576
    [ "$hard_nproc" = unlimited ] && hard_nproc=65536
    # Values well below the host's hard limits: on this kind of machine the
    # runtime's setrlimit fails (EPERM) for an nproc of 65536 even under a
    # hard limit of 96364, while 32768 works.
    nofile=$((hard_nofile < 16384 ? hard_nofile : 16384))
    nproc=$((hard_nproc < 16384 ? hard_nproc : 16384))
    cat >"$engine/containers.conf" <<EOF
# Written by $(basename "$0") for this run only.
[containers]
# The engine cannot raise rlimits here; ask for what the host allows.
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
log_driver = "k8s-file"

[network]
network_config_dir = "$engine/cni"

[engine]
# crun fails under hybrid cgroups (v1 controllers + v2 unified).
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$engine/tmp"
volume_path = "$engine/volumes"
EOF
    cat >"$engine/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$engine/graph"
runroot = "$engine/run"
EOF
    cat >"$engine/registries.conf" <<EOF
# No registry is reachable: every image is built or imported locally.
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
EOF
    export CONTAINERS_CONF=$engine/containers.conf
    export CONTAINERS_STORAGE_CONF=$engine/storage.conf
    export CONTAINERS_REGISTRIES_CONF=$engine/registries.conf
}

# The first mirror of the machine's apt sources that serves this release.
debian_mirror() {
    local codename f
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v c="$codename" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
            if ($(i + 1) == c) { print $i; exit } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v c="$codename" 'BEGIN { RS = ""; FS = "\n" } {
            uri = ""; ok = 0
            for (n = 1; n <= NF; n++) {
                if ($n ~ /^URIs:/) { split($n, a, /[ \t]+/); uri = a[2] }
                if ($n ~ /^Suites:/) { m = split($n, s, /[ \t]+/); for (k = 2; k <= m; k++) if (s[k] == c) ok = 1 }
            }
            if (ok && uri != "") { print uri; exit } }' "$f"
    done
}

podman_base_image() {
    local cache_dir=$1 work=$2 base_tar mirror rootfs
    base_tar=$cache_dir/bookworm-slim.tar
    mkdir -p "$cache_dir"
    if [ ! -s "$base_tar" ]; then
        mirror=${DEBIAN_MIRROR:-$(debian_mirror | head -n 1)}
        [ -n "$mirror" ] || die "no Debian mirror for this release in /etc/apt/sources*; set DEBIAN_MIRROR"
        step "debootstrap bookworm (minbase) from the configured mirror"
        rootfs=$work/rootfs
        debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
            die "debootstrap failed (log: $work/debootstrap.log)"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
        tar -C "$rootfs" --numeric-owner -cf "$base_tar.tmp" .
        sync "$base_tar.tmp"
        mv -f "$base_tar.tmp" "$base_tar"
        rm -rf "$rootfs"
    else
        step "bookworm base from the cache ($base_tar)"
    fi
    podman import --change 'CMD ["/bin/bash"]' "$base_tar" docker.io/library/debian:bookworm-slim >/dev/null
    check "base image docker.io/library/debian:bookworm-slim imported" \
        podman image exists docker.io/library/debian:bookworm-slim
}

podman_build_images() {
    local log=$1 profile=$2 build_args=()
    step "building the binaries on the host ($profile) and the images through the builder context"
    [ "$profile" = release ] || build_args+=(--debug)
    # Builds do not read default_ulimits: pass them.
    ENGINE_CMD=podman BUILD_OPTS="--ulimit nofile=$nofile:$nofile --ulimit nproc=$nproc:$nproc" \
        "$REPO/compose/build-images.sh" "${build_args[@]}" >"$log" 2>&1 ||
        die "compose/build-images.sh failed; last lines: $(tail -n 20 "$log")"
    check "tracker image built" podman image exists maintenance-window/reference-tracker:latest
    check "sidecar image built" podman image exists maintenance-window/maintenance-sidecar:latest
}

# The two images of podman_build_images, for another test to load
# (`podman load -i FILE`) instead of building them again.
podman_save_images() {
    rm -f "$1" # podman save refuses an existing file
    podman save -q -m --format docker-archive -o "$1" \
        maintenance-window/reference-tracker:latest maintenance-window/maintenance-sidecar:latest
}

# The end of a test run: with --keep (KEEP=true) or a failure (RC != 0) the
# work folder stays for the logs (after a failure without the image store);
# otherwise the engine's store and the work folder go.
# Usage: podman_engine_teardown RC KEEP WORK ENGINE
podman_engine_teardown() {
    local rc=$1 keep=$2 work=$3 engine=$4
    if [ "$keep" = true ] || [ "$rc" -ne 0 ]; then
        echo "work folder kept: $work (podman with CONTAINERS_CONF=$engine/containers.conf CONTAINERS_STORAGE_CONF=$engine/storage.conf)"
        [ "$keep" = true ] || {
            podman system reset -f >/dev/null 2>&1
            rm -rf "$engine/graph" "$engine/run"
        }
    else
        podman system reset -f >/dev/null 2>&1
        rm -rf "$work"
    fi
    step "finished (exit $rc)"
}
