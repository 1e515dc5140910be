#!/usr/bin/env bash
# test-kubernetes.sh: runs deploy/kubernetes/sqlite with `podman kube play`.
#
# The manifests are only worth something if they run, so this script plays
# the single-replica SQLite Deployment on real containers (podman 4.3 +
# runc, the engine set-up of the container test: scripts/podman-engine.sh)
# and checks what the issue promised:
#   1. every manifest is valid against the Kubernetes OpenAPI schema
#      (scripts/validate-kubernetes.sh, offline), the file handed to
#      `podman kube play` included;
#   2. the images: loaded from --images FILE (saved by
#      scripts/test-containers.sh --save-images, as .ci/run does), else
#      built the container test's way;
#   3. the ConfigMap, the Deployment and the PersistentVolumeClaim are
#      played as they are; the Secret is made by the test (a fresh token, an
#      age key pair whose public half is the recipients file) and becomes a
#      podman secret, since podman 4.3 reads Secret volumes from its own
#      secret store; the securityContext holds (uid 1000, read-only root
#      filesystem, no capabilities, seccomp);
#   4. the probes, run as the manifest specifies them (httpGet against the
#      pod's address, exec in the container), answer before, during (the
#      tracker quiesced and refusing announces while the sidecar is paused)
#      and after a window; the sidecar's probe fails after an aborted
#      window and when no backup is young enough;
#   5. a window opened through the coordinator API (inside the pod's
#      network, where the API listens) publishes a verified, encrypted
#      backup in the volume, which verify and restore (outside the pod,
#      with the age identity) accept with the counts announced before;
#   6. `podman kube down` leaves no container, pod or process running.
#
# Usage: scripts/test-kubernetes.sh [--images FILE] [--keep]
# Environment: CACHE_DIR, WORK_PARENT, BIN_PROFILE, DEBIAN_MIRROR as for
#   scripts/test-containers.sh (used only without --images).
# Needs root (apt, podman, nsenter). Exit 0 when every check passed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGES=""
KEEP=false
while [ $# -gt 0 ]; do
    arg=$1
    shift
    case $arg in
    --images)
        IMAGES=${1:?--images needs a file}
        shift
        ;;
    --keep) KEEP=true ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "test-kubernetes.sh: unknown argument $arg (try --help)" >&2
        exit 2
        ;;
    esac
done
[ "$(id -u)" -eq 0 ] || {
    echo "test-kubernetes.sh: needs root (apt-get, podman with runc)" >&2
    exit 2
}

CACHE_DIR=${CACHE_DIR:-/var/tmp/test-containers-cache}
BIN_PROFILE=${BIN_PROFILE:-debug}
# step, die, check, and the engine set-up.
# shellcheck source=scripts/podman-engine.sh
. "$REPO/scripts/podman-engine.sh"

# --- 1. packages and schema ------------------------------------------------------

"$REPO/scripts/apt-ensure.sh" podman runc conmon containernetworking-plugins iptables uidmap \
    debootstrap catatonit curl sqlite3 zstd python3 util-linux age
check "manifests valid against the Kubernetes OpenAPI schema, kustomizations consistent" \
    "$REPO/scripts/validate-kubernetes.sh"
# Python with PyYAML (the validator's venv) for reading the manifests.
PY=${K8S_VALIDATE_VENV:-/opt/maintenance-test-kubernetes-validate}/bin/python

# --- 2. engine and images --------------------------------------------------------

mkdir -p "${WORK_PARENT:-/var/tmp}"
WORK=$(mktemp -d "${WORK_PARENT:-/var/tmp}/test-kubernetes.XXXXXX")
ENGINE=$WORK/engine
PLAY=$WORK/play.yaml
played=false

cleanup() {
    local rc=$?
    set +e
    [ "$played" = true ] && podman kube down "$PLAY" >/dev/null 2>&1
    podman rm -af -t 2 >/dev/null 2>&1
    podman pod rm -af >/dev/null 2>&1
    podman_engine_teardown "$rc" "$KEEP" "$WORK" "$ENGINE"
}
trap cleanup EXIT

podman_engine_setup "$ENGINE"
if [ -n "$IMAGES" ]; then
    podman load -q -i "$IMAGES" >/dev/null || die "podman load -i $IMAGES failed"
    step "images loaded from $IMAGES"
else
    podman_base_image "$CACHE_DIR" "$WORK"
    podman_build_images "$WORK/build-images.log" "$BIN_PROFILE"
fi
check "tracker image present" podman image exists maintenance-window/reference-tracker:latest
check "sidecar image present" podman image exists maintenance-window/maintenance-sidecar:latest

# --- 3. the play file -------------------------------------------------------------

K8S=$REPO/deploy/kubernetes/sqlite
SECRETS=$WORK/secrets
mkdir -m 0700 "$SECRETS"
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$SECRETS/maintenance_token"
age-keygen -o "$SECRETS/age_identity" 2>/dev/null
age-keygen -y "$SECRETS/age_identity" >"$SECRETS/age_recipients"
printf 'unused' >"$SECRETS/s3_access_key_id"
printf 'unused' >"$SECRETS/s3_secret_access_key"

# The Secret with the keys of secret.example.yaml, as kustomize's
# secretGenerator would make it (base64 `data`), or, with `raw`, as podman
# 4.3's secret store needs it: its kube play writes a `data` value into the
# file without decoding the base64, and ignores `stringData`.
secret_manifest() { # base64|raw
    "$PY" - "$K8S/secret.example.yaml" "$SECRETS" "$1" <<'EOF'
import base64, json, pathlib, sys
import yaml
example, folder, form = yaml.safe_load(open(sys.argv[1])), pathlib.Path(sys.argv[2]), sys.argv[3]
values = {k: (folder / k).read_bytes() for k in example.pop("stringData")}
encode = (lambda b: base64.b64encode(b).decode()) if form == "base64" else (lambda b: b.decode())
example["data"] = {k: encode(v) for k, v in values.items()}
print(json.dumps(example, indent=2))
EOF
}
secret_manifest base64 >"$WORK/secret.json"
{
    cat "$K8S/configmap.yaml"
    echo "---"
    cat "$K8S/pvc.yaml"
    echo "---"
    cat "$K8S/deployment.yaml"
} >"$PLAY"
check "the Secret and the play file are valid against the schema" \
    "$REPO/scripts/validate-kubernetes.sh" "$WORK/secret.json" "$PLAY"
secret_manifest raw | podman secret create maintenance-secrets - >/dev/null
rm -f "$WORK/secret.json"

step "podman kube play (ConfigMap, PersistentVolumeClaim, Deployment)"
podman kube play "$PLAY" >"$WORK/play.log" 2>&1 || die "kube play failed: $(tail -n 20 "$WORK/play.log")"
played=true

# A Deployment plays as the pod <name>-pod-0.
POD=tracker-pod-0
ctr() { podman ps -aq --filter "pod=$POD" --filter "name=$POD-$1\$" | head -n 1; }
wait_running() {
    for _ in $(seq 60); do
        [ -n "$(ctr tracker)" ] && [ -n "$(ctr sidecar)" ] && return 0
        sleep 1
    done
    podman ps -a >&2
    return 1
}
check "pod $POD runs both containers" wait_running
POD_IP=$(podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(ctr tracker)")
[ -n "$POD_IP" ] || die "no address for the pod"
step "pod address $POD_IP"

# --- 4. the probes, as the manifest specifies them ------------------------------------

# One line per probe: CONTAINER KIND TIMEOUT http PORT PATH | exec ARG...
"$PY" - "$K8S/deployment.yaml" >"$WORK/probes" <<'EOF'
import sys
import yaml
spec = yaml.safe_load(open(sys.argv[1]))["spec"]["template"]["spec"]
for c in spec["containers"]:
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        p = c.get(kind)
        if not p:
            continue
        t = p.get("timeoutSeconds", 1)
        if "httpGet" in p:
            print(c["name"], kind, t, "http", p["httpGet"]["port"], p["httpGet"]["path"])
        elif "exec" in p:
            print(c["name"], kind, t, "exec", *p["exec"]["command"])
        else:
            sys.exit(f"{c['name']} {kind}: a probe type this test does not run")
EOF
[ "$(wc -l <"$WORK/probes")" -ge 3 ] || die "expected at least 3 probes in deployment.yaml, found: $(cat "$WORK/probes")"

# probe CONTAINER KIND [EXTRA ARGS for an exec probe]: runs the probe as the
# kubelet would; its exit status.
probe() {
    local name=$1 kind=$2 line t type rest
    shift 2
    line=$(awk -v c="$name" -v k="$kind" '$1 == c && $2 == k' "$WORK/probes")
    [ -n "$line" ] || die "no $kind on $name in deployment.yaml"
    read -r _ _ t type rest <<<"$line"
    case $type in
    http)
        read -r port path <<<"$rest"
        curl -fsS --max-time "$t" -o /dev/null "http://$POD_IP:$port$path"
        ;;
    exec)
        local argv
        read -r -a argv <<<"$rest"
        timeout "$t" podman exec "$(ctr "$name")" "${argv[@]}" "$@" >"$WORK/probe.out" 2>&1
        ;;
    esac
}
tracker_probes_pass() { probe tracker livenessProbe && probe tracker readinessProbe; }
all_probes_pass() {
    tracker_probes_pass || return 1
    probe sidecar livenessProbe || { cat "$WORK/probe.out" >&2; return 1; }
}
wait_ready() {
    for _ in $(seq 60); do
        probe tracker readinessProbe 2>/dev/null && return 0
        sleep 1
    done
    podman logs --tail 20 "$(ctr tracker)" >&2
    return 1
}
check "tracker readiness probe passes" wait_ready
check "every probe passes before any window (the sidecar's: no backup yet, no window ended)" all_probes_pass

# --- securityContext, as applied ----------------------------------------------------

in_ctr() { podman exec "$(ctr "$1")" "${@:2}"; }
security_holds() {
    local name=$1 out
    [ "$(in_ctr "$name" id -u)" = 1000 ] || { echo "$name: uid $(in_ctr "$name" id -u)" >&2; return 1; }
    [ "$(podman inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$(ctr "$name")")" = true ] || return 1
    if in_ctr "$name" touch /usr/local/bin/probe-write 2>/dev/null; then
        echo "$name: root filesystem writable" >&2
        return 1
    fi
    out=$(in_ctr "$name" cat /proc/self/status)
    grep -Eq '^CapEff:[[:space:]]+0+$' <<<"$out" || { echo "$name: $(grep CapEff <<<"$out")" >&2; return 1; }
    grep -Eq '^CapBnd:[[:space:]]+0+$' <<<"$out" || { echo "$name: $(grep CapBnd <<<"$out")" >&2; return 1; }
    grep -Eq '^NoNewPrivs:[[:space:]]+1$' <<<"$out" || { echo "$name: $(grep NoNewPrivs <<<"$out")" >&2; return 1; }
    grep -Eq '^Seccomp:[[:space:]]+2$' <<<"$out" || { echo "$name: $(grep Seccomp: <<<"$out")" >&2; return 1; }
}
check "tracker: uid 1000, read-only root fs, no capabilities, no new privileges, seccomp filter" security_holds tracker
check "sidecar: uid 1000, read-only root fs, no capabilities, no new privileges, seccomp filter" security_holds sidecar
memory_limit() { # CONTAINER BYTES
    [ "$(podman inspect -f '{{.HostConfig.Memory}}' "$(ctr "$1")")" = "$2" ]
}
memory_limits() { memory_limit tracker $((256 << 20)) && memory_limit sidecar $((128 << 20)); }
check "memory limits applied (tracker 256 MiB, sidecar 128 MiB)" memory_limits

# --- 5. a window through the coordinator API --------------------------------------------

announce_completed() { # HEX40 PEER_NO: the answer on stdout
    local hash
    hash=$(printf '%s' "$1" | sed 's/../%&/g')
    curl -fsS --max-time 5 \
        "http://$POD_IP:7070/announce?info_hash=$hash&peer_id=-CT0001-00000000000$2&port=6881&uploaded=0&downloaded=100&left=0&event=completed"
}
announced() {
    announce_completed aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 1 | grep -q interval &&
        announce_completed aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 2 | grep -q interval &&
        announce_completed bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb 1 | grep -q interval
}
check "announces answered through the pod's address" announced
ANNOUNCED=3

# The API listens on 127.0.0.1 inside the pod (like `kubectl port-forward`):
# curl runs in the pod's network namespace; the token goes in a header file.
printf 'Authorization: Bearer %s\n' "$(cat "$SECRETS/maintenance_token")" >"$SECRETS/auth-header"
api() { # METHOD PATH [JSON]
    local pid
    pid=$(podman inspect -f '{{.State.Pid}}' "$(ctr tracker)")
    if [ "$1" = GET ]; then
        nsenter --net="/proc/$pid/ns/net" curl -fsS --max-time 5 "http://127.0.0.1:7071/maintenance/v1/$2"
    else
        nsenter --net="/proc/$pid/ns/net" curl -fsS --max-time 5 -H "@$SECRETS/auth-header" \
            -H 'Content-Type: application/json' --data "${3:-{\}}" "http://127.0.0.1:7071/maintenance/v1/$2"
    fi
}
state() { api GET status | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
last_outcome() {
    api GET status | "$PY" -c 'import json,sys; o = json.load(sys.stdin)["last_outcomes"]; print(o[0]["outcome"] if o else "none")'
}
wait_state() { # STATE
    for _ in $(seq 60); do
        [ "$(state 2>/dev/null)" = "$1" ] && return 0
        sleep 0.5
    done
    api GET status >&2
    return 1
}

# The sidecar is paused so the window stays quiesced while the probes run.
podman pause "$(ctr sidecar)" >/dev/null
open_window() { api POST windows '{"duration_secs":180}' >/dev/null; }
check "ad hoc window opened through the API with the token" open_window
check "window quiesced (state ready), the sidecar paused" wait_state ready
check "during the window: tracker liveness and readiness pass (the pod stays in its Service)" tracker_probes_pass
during_announce() { announce_completed cccccccccccccccccccccccccccccccccccccccc 1 | grep -q interval; }
check "during the window (defer-writes): a completed announce is answered" during_announce
podman unpause "$(ctr sidecar)" >/dev/null
backup_published() {
    for _ in $(seq 120); do
        [ "$(last_outcome 2>/dev/null)" = completed ] && return 0
        sleep 1
    done
    api GET status >&2
    podman logs --tail 30 "$(ctr sidecar)" >&2
    return 1
}
check "the sidecar claimed the window and completed it" backup_published

VOLUME=$(podman volume inspect tracker-data -f '{{.Mountpoint}}')
BACKUPS=$VOLUME/backups
backup_in_volume() {
    local dir
    dir=$(readlink -f "$BACKUPS/latest")
    [ -f "$dir/manifest.json" ] || { ls -la "$BACKUPS" >&2; return 1; }
    grep -q '"verified": true' "$dir/manifest.json" || { echo "not verified" >&2; return 1; }
    grep -q '"encryption"' "$dir/manifest.json" || { echo "not encrypted" >&2; return 1; }
    [ -z "$(find "$dir" ! -uid 1000)" ] || { echo "files not owned by 1000" >&2; return 1; }
}
check "a verified, age-encrypted backup owned by 1000 is in the PersistentVolumeClaim" backup_in_volume
NAME=$(basename "$(readlink -f "$BACKUPS/latest")")

# Restore as an operator would: the sidecar image, the volume, and the age
# identity that never entered the cluster.
RESTORED=$WORK/restored
mkdir -p "$RESTORED"
install -o 1000 -g 1000 -m 0400 "$SECRETS/age_identity" "$RESTORED/.age_identity"
chown 1000:1000 "$RESTORED"
restore_counts() {
    podman run --rm --user 1000:1000 -v tracker-data:/data -v "$RESTORED:/restore" \
        -e BACKUP_DIR=/data/backups -e BACKUP_AGE_IDENTITY_FILE=/restore/.age_identity \
        maintenance-window/maintenance-sidecar:latest verify "$NAME" >"$WORK/verify.log" 2>&1 ||
        { cat "$WORK/verify.log" >&2; return 1; }
    podman run --rm --user 1000:1000 -v tracker-data:/data -v "$RESTORED:/restore" \
        -e BACKUP_DIR=/data/backups -e BACKUP_AGE_IDENTITY_FILE=/restore/.age_identity \
        maintenance-window/maintenance-sidecar:latest \
        restore "$NAME" --engine sqlite --to /restore/sqlite3.db --force >"$WORK/restore.log" 2>&1 ||
        { cat "$WORK/restore.log" >&2; return 1; }
    local n
    n=$(sqlite3 "$RESTORED/sqlite3.db" 'select sum(completed) from torrents')
    [ "$n" = "$ANNOUNCED" ] || { echo "restored counts $n, announced before the window $ANNOUNCED" >&2; return 1; }
}
check "verify and restore (with the age identity) give the counts announced before the window ($ANNOUNCED)" restore_counts
check "after the window: every probe passes (the sidecar's sees the fresh backup)" all_probes_pass

# The sidecar's probe fails when no backup is young enough ...
too_old_fails() {
    ! probe sidecar livenessProbe --max-age-hours 0 && grep -q 'younger than' "$WORK/probe.out"
}
check "the sidecar's probe fails (exit 1) when no backup is younger than the limit" too_old_fails
# ... and when the last window did not complete.
podman pause "$(ctr sidecar)" >/dev/null
open_window || die "second window not opened"
wait_state ready || die "second window not quiesced"
api POST abort '{"reason":"test"}' >/dev/null || die "abort refused"
podman unpause "$(ctr sidecar)" >/dev/null
aborted_fails() {
    [ "$(last_outcome)" = aborted ] || return 1
    ! probe sidecar livenessProbe && grep -q 'aborted' "$WORK/probe.out"
}
check "the sidecar's probe fails (exit 1) after an aborted window, naming it" aborted_fails
check "the tracker's probes still pass" tracker_probes_pass

# --- 6. podman kube down -----------------------------------------------------------------

step "podman kube down"
podman kube down "$PLAY" >"$WORK/down.log" 2>&1 || die "kube down failed: $(cat "$WORK/down.log")"
played=false
nothing_left() {
    [ -z "$(podman ps -aq)" ] || { podman ps -a >&2; return 1; }
    [ -z "$(podman pod ps -q)" ] || { podman pod ps >&2; return 1; }
    # No conmon or container process of this engine.
    ! pgrep -f "conmon.*$ENGINE" >/dev/null
}
check "podman kube down leaves no container, pod or conmon running" nothing_left
# Like a PersistentVolumeClaim, the volume outlives the pod: the backups stay.
check "the volume (PVC) and its backups outlive the pod" test -f "$BACKUPS/$NAME/manifest.json"
# podman 4.3 also keeps a named volume for each configMap and secret
# volume of the pod (a cluster drops them with the pod): said, then removed
# with the rest.
step "volumes left after kube down: $(podman volume ls -q | tr '\n' ' ')"
podman volume rm -af >/dev/null
podman secret rm maintenance-secrets >/dev/null

step "all Kubernetes checks passed in $((SECONDS - T0))s"
