#!/usr/bin/env bash
# Validates the Kubernetes manifests offline, with no cluster:
#   1. every resource against the Kubernetes OpenAPI schema, strictly
#      (unknown fields are errors), with `kubernetes-validate` from PyPI
#      (it ships the JSON schemas of each Kubernetes release; pinned, in its
#      own venv, installed once);
#   2. every kustomization.yaml, which no published schema covers, by
#      scripts/check-kustomization.py: its resources exist, every manifest
#      of its folder is listed (secret.example.yaml excepted), and its
#      secretGenerator has exactly the keys of secret.example.yaml.
# Called by scripts/test-kubernetes.sh; with arguments it validates those
# files instead (e.g. the manifest the test hands to `podman kube play`).
#
# Usage: scripts/validate-kubernetes.sh [FILE...]
# Environment: K8S_VALIDATE_VENV (default /opt/maintenance-test-kubernetes-validate).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${K8S_VALIDATE_VENV:-/opt/maintenance-test-kubernetes-validate}
version=1.37.0
kube_version=1.37.0

if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qF "$version"; then
    echo "installing kubernetes-validate==$version into $venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        "$REPO/scripts/apt-ensure.sh" python3-venv
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$version"
fi

if [ $# -gt 0 ]; then
    files=("$@")
    kustomizations=()
else
    mapfile -t files < <(find "$REPO/deploy/kubernetes" -name '*.yaml' ! -name kustomization.yaml | sort)
    mapfile -t kustomizations < <(find "$REPO/deploy/kubernetes" -name kustomization.yaml | sort)
    [ "${#files[@]}" -gt 0 ] || {
        echo "validate-kubernetes.sh: no manifests under deploy/kubernetes" >&2
        exit 1
    }
fi
"$venv/bin/kubernetes-validate" --strict --quiet -k "$kube_version" "${files[@]}"
echo "validate-kubernetes.sh: ${#files[@]} manifest file(s) valid against the Kubernetes $kube_version OpenAPI schema (strict)"
if [ "${#kustomizations[@]}" -gt 0 ]; then
    "$venv/bin/python" "$REPO/scripts/check-kustomization.py" "${kustomizations[@]}"
fi
