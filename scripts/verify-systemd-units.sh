#!/usr/bin/env bash
# Checks the backup's systemd units with `systemd-analyze verify`: SERVICE
# (compose/systemd/maintenance-backup.service, or the podman variant) and
# the timer, copied into OUT_DIR with ExecStart pointing at this checkout's
# compose/maintenance-backup.sh. Each STANDIN_UNIT (such as docker.service)
# is written there as a no-op unit, so a unit the service requires is found
# whether or not its engine is installed (OUT_DIR comes first in the
# search); without stand-ins the host must provide what the service needs.
# Used by scripts/lint.sh (Docker units, docker.service stand-in) and
# scripts/test-containers.sh (podman unit on a host without Docker).
#
# Usage: scripts/verify-systemd-units.sh SERVICE OUT_DIR [STANDIN_UNIT...]
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: $0 SERVICE OUT_DIR [STANDIN_UNIT...]" >&2
    exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
service=$1
out=$2
shift 2
mkdir -p "$out"
sed "s|^ExecStart=.*|ExecStart=$repo/compose/maintenance-backup.sh|" "$service" >"$out/maintenance-backup.service"
cp "$repo/compose/systemd/maintenance-backup.timer" "$out/"
for unit in "$@"; do
    printf '[Unit]\nDescription=container engine stand-in for the syntax check\n[Service]\nType=oneshot\nExecStart=/bin/true\n' \
        >"$out/$unit"
done
cd "$out"
SYSTEMD_LOG_LEVEL=err systemd-analyze verify --man=no ./maintenance-backup.timer ./maintenance-backup.service
