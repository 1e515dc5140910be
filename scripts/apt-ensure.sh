#!/usr/bin/env bash
# Installs those of the Debian packages given as arguments that are not
# installed yet, saying "installing: ..." first; runs apt-get (update, then
# install without recommends) only when something is missing, so a machine
# that has everything is not touched and needs no network. Used by .ci/run,
# scripts/test-containers.sh and scripts/install-s3-test-server.sh.
#
# Usage: scripts/apt-ensure.sh PKG...
set -euo pipefail
missing=()
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
