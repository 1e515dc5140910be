#!/usr/bin/env bash
# Shell and config linters plus the host-cron fallback tests; called by
# scripts/test-all.sh. Fails (non-zero) on any failure, and when a check
# finds nothing to check.
#
#   1. shellcheck on every shell script in the repository (*.sh, .ci/run and
#      the bash scripts under compose/);
#   2. the compose file parsed by docker-compose (or `docker compose`) with
#      every profile, with and without compose/.env.example;
#   3. promtool on the Prometheus config and alert rules under compose/;
#   4. compose/tests/run.sh (the fallback script driven for real), after
#      building the two debug binaries it needs.
#
# Needs: shellcheck, docker-compose (parser only, no engine), promtool,
# cargo, curl, flock, sqlite3.
set -euo pipefail
cd "$(dirname "$0")/.."

section() { printf '\n== lint: %s\n' "$*"; }
die() {
    printf 'lint: FAILED: %s\n' "$*" >&2
    exit 1
}

# --- 1. shellcheck --------------------------------------------------------------
section "shellcheck"
command -v shellcheck >/dev/null || die "shellcheck is not installed"
scripts=()
while IFS= read -r -d '' f; do
    scripts+=("$f")
done < <(find . \( -path ./target -o -path ./.git -o -path '*/node_modules' \) -prune -o \
    -type f -name '*.sh' -print0)
[ -f .ci/run ] && scripts+=(.ci/run)
# Extension-less bash scripts under compose/ (e.g. the docker stand-in).
while IFS= read -r -d '' f; do
    case $f in *.sh) continue ;; esac
    if head -n 1 "$f" | grep -Eq '^#!.*(ba)?sh'; then
        scripts+=("$f")
    fi
done < <(find compose -type f -perm -u+x -print0 2>/dev/null)
[ "${#scripts[@]}" -gt 0 ] || die "no shell scripts found"
printf '  %s\n' "${scripts[@]}"
shellcheck -x "${scripts[@]}" || die "shellcheck"
echo "shellcheck: ${#scripts[@]} scripts clean"

# --- 2. compose file ------------------------------------------------------------
section "docker compose config"
compose_file=compose/docker-compose.yml
[ -f "$compose_file" ] || die "$compose_file is missing"
if command -v docker-compose >/dev/null; then
    dc=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    dc=(docker compose)
else
    die "neither docker-compose nor the docker compose plugin is installed"
fi
profiles=("" backup online mysql postgres monitoring "backup mysql monitoring" "backup postgres monitoring" "online mysql")
checked=0
for env_file in "" compose/.env.example; do
    for p in "${profiles[@]}"; do
        args=(-f "$compose_file")
        [ -n "$env_file" ] && args+=(--env-file "$env_file")
        for one in $p; do
            args+=(--profile "$one")
        done
        label="profiles [${p:-default}]${env_file:+ with $env_file}"
        # Without an engine only the parser runs; COMPOSE_PROFILES unset so
        # --profile alone decides.
        if ! out=$(env -u COMPOSE_PROFILES "${dc[@]}" "${args[@]}" config 2>&1); then
            printf '%s\n' "$out" >&2
            die "compose config, $label"
        fi
        if grep -qi 'warning' <<<"$out"; then
            printf '%s\n' "$out" | grep -i warning >&2
            die "compose config warnings, $label"
        fi
        checked=$((checked + 1))
        echo "ok: $label"
    done
done
# `docker compose up` must never start the one-shot backup service.
out=$("${dc[@]}" -f "$compose_file" --profile backup config)
awk '/^  backup-once:/ {in_svc = 1; next} /^  [^ ]/ {in_svc = 0} in_svc' <<<"$out" |
    grep -Eq -- '- backup$' || die "service backup-once is not limited to the profile 'backup'"
[ "$checked" -gt 0 ] || die "no compose configuration checked"
echo "compose: $checked configurations parsed"

# --- 3. Prometheus ----------------------------------------------------------------
section "promtool"
prom_configs=()
rule_files=()
while IFS= read -r -d '' f; do
    if grep -q '^scrape_configs:' "$f"; then
        prom_configs+=("$f")
    elif grep -q '^groups:' "$f"; then
        rule_files+=("$f")
    fi
done < <(find compose -type f \( -name '*.yml' -o -name '*.yaml' \) ! -name 'docker-compose*' -print0 2>/dev/null)
if [ "${#prom_configs[@]}" -gt 0 ] || [ "${#rule_files[@]}" -gt 0 ]; then
    command -v promtool >/dev/null || die "promtool is not installed"
    for f in "${prom_configs[@]}"; do
        promtool check config "$f" || die "promtool check config $f"
    done
    if [ "${#rule_files[@]}" -gt 0 ]; then
        promtool check rules "${rule_files[@]}" || die "promtool check rules"
    fi
else
    echo "no Prometheus files under compose/"
fi

# --- 4. cron file and systemd units -------------------------------------------------
section "cron file and systemd units"
cron=compose/maintenance-backup.cron
[ -f "$cron" ] || die "$cron is missing"
# Every job line: 5 time fields, the user (cron.d format), and a command
# naming the script.
jobs=$(grep -Ev '^[[:space:]]*(#|$)|^[A-Z_]+=' "$cron" || true)
[ -n "$jobs" ] || die "$cron has no job line"
awk 'NF < 7 || $6 != "root" || $0 !~ /maintenance-backup\.sh/ {print "bad cron line: " $0; bad = 1} END {exit bad}' <<<"$jobs" ||
    die "$cron"
echo "ok: $cron"
for unit in compose/systemd/maintenance-backup.service compose/systemd/maintenance-backup.timer; do
    [ -f "$unit" ] || die "$unit is missing"
done
if command -v systemd-analyze >/dev/null; then
    unit_dir=$(mktemp -d)
    trap 'rm -rf "$unit_dir"' EXIT
    # The service requires docker.service. This checks the units' syntax, not
    # the host, so a stand-in engine unit sits beside them: verify then passes
    # with or without Docker installed.
    scripts/verify-systemd-units.sh compose/systemd/maintenance-backup.service "$unit_dir" \
        docker.service || die "systemd-analyze verify"
    calendar=$(sed -n 's/^OnCalendar=//p' compose/systemd/maintenance-backup.timer)
    systemd-analyze calendar "$calendar" >/dev/null || die "timer OnCalendar=$calendar"
    echo "ok: systemd units (systemd-analyze verify)"
else
    echo "systemd-analyze not installed: units not verified"
fi

# --- 5. fallback tests ---------------------------------------------------------------
echo "lint: shellcheck, compose and promtool checks passed"
section "host-cron fallback tests (compose/tests/run.sh)"
[ -x compose/tests/run.sh ] || die "compose/tests/run.sh is missing or not executable"
cargo build --locked -p reference-tracker -p maintenance-sidecar || die "cargo build"
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
TRACKER_BIN=$target_dir/debug/reference-tracker SIDECAR_BIN=$target_dir/debug/maintenance-sidecar \
    compose/tests/run.sh || die "fallback tests"
# run.sh's last line ("N passed, 0 failed") closes the output.
