#!/usr/bin/env bash
# Installs the S3-compatible test server (moto's server mode, from PyPI)
# into a venv, once: the off-site tests and the upload benchmark start it
# through scripts/s3-test-server.py. Idempotent; nothing is fetched when
# the venv already works (the tests then run offline).
#   MOTO_VENV   where the venv lives (default /opt/maintenance-test-moto)
set -euo pipefail

venv="${MOTO_VENV:-/opt/maintenance-test-moto}"
version="5.2.5"

if "$venv/bin/python" -c "import moto.server, boto3" 2>/dev/null; then
    exit 0
fi
echo "installing moto[server]==$version into $venv"
if ! python3 -m venv "$venv" 2>/dev/null; then
    "$(dirname "$0")/apt-ensure.sh" python3-venv
    rm -rf "$venv"
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$version"
"$venv/bin/python" -c "import moto.server, boto3"
