#!/usr/bin/env bash
# Validates Deploy/ and Grafana/ offline (no docker, no network):
#   1. promtool check config Deploy/prometheus/prometheus.yml   (also resolves and checks its rule_files)
#   2. promtool check rules  Deploy/prometheus/alerts.yml
#   3. promtool test rules   Deploy/prometheus/alerts.test.yml  (if present)
#   4. systemd-analyze verify on Deploy/systemd/celeriac-worker@.service (skipped, with a note, if unavailable)
#   5. JSON validity of Grafana/*.json (python3 -m json.tool)
#   6. YAML validity of the other YAML files (if python3 has the yaml module)
#   7. every celeriac_* / process_* metric name used in Grafana/*.json and Deploy/prometheus/alerts.yml exists
#      in Sources/CeleriacMetrics/MetricNames.swift (histogram suffixes _bucket/_sum/_count stripped)
#
# Usage: scripts/check-deploy.sh        Exit status 0 when everything passed, 1 otherwise.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

failures=0
pass() { echo "check-deploy: ok    $*"; }
fail() { echo "check-deploy: FAIL  $*"; failures=$((failures + 1)); }
skip() { echo "check-deploy: skip  $*"; }
indent() { sed 's/^/    /'; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# ---- 1-3. Prometheus
PROM_DIR=Deploy/prometheus
if command -v promtool >/dev/null 2>&1; then
    if out=$(promtool check config "$PROM_DIR/prometheus.yml" 2>&1); then
        pass "promtool check config $PROM_DIR/prometheus.yml"
    else
        fail "promtool check config $PROM_DIR/prometheus.yml (is every rule_files path present, relative to the config?)"
        echo "$out" | indent
    fi
    if out=$(promtool check rules "$PROM_DIR/alerts.yml" 2>&1); then
        pass "promtool check rules $PROM_DIR/alerts.yml ($(grep -o '[0-9]* rules found' <<<"$out" | head -n1))"
    else
        fail "promtool check rules $PROM_DIR/alerts.yml"
        echo "$out" | indent
    fi
    if [[ -f "$PROM_DIR/alerts.test.yml" ]]; then
        if out=$(cd "$PROM_DIR" && promtool test rules alerts.test.yml 2>&1); then
            pass "promtool test rules $PROM_DIR/alerts.test.yml"
        else
            fail "promtool test rules $PROM_DIR/alerts.test.yml"
            echo "$out" | indent
        fi
    fi
else
    fail "promtool not found (Debian package 'prometheus'; scripts/bootstrap.sh installs it)"
fi

# ---- 4. systemd unit
UNIT=Deploy/systemd/celeriac-worker@.service
if [[ ! -f "$UNIT" ]]; then
    fail "$UNIT is missing"
elif ! command -v systemd-analyze >/dev/null 2>&1; then
    skip "systemd-analyze verify $UNIT: systemd-analyze is not installed here"
else
    # verify checks that ExecStart's binary exists. It is installed at /usr/local/bin only on real hosts, so a
    # copy of the unit points at an executable stub instead; everything else is verified as written.
    BIN=$(sed -n 's#^ExecStart=\([^ ]*\).*#\1#p' "$UNIT" | head -n1)
    mkdir -p "$TMP/unit"
    printf '#!/bin/sh\nexit 0\n' > "$TMP/unit/celeriac-demo"
    chmod 755 "$TMP/unit/celeriac-demo"
    sed "s#^ExecStart=$BIN#ExecStart=$TMP/unit/celeriac-demo#" "$UNIT" > "$TMP/unit/celeriac-worker@.service"
    # An instance of the template; any diagnostic (even an "Unknown key" warning, exit status 0) counts as a failure.
    out=$(cd "$TMP/unit" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify ./celeriac-worker@check.service 2>&1)
    rc=$?
    out=$(sed "s#$TMP/unit/#Deploy/systemd/#g" <<<"$out")
    if (( rc == 0 )) && [[ -z "$out" ]]; then
        pass "systemd-analyze verify $UNIT (instance celeriac-worker@check; ExecStart=$BIN replaced by a stub)"
    elif [[ "$out" == *"System has not been booted with systemd"* || "$out" == *"Failed to initialize manager"* ]]; then
        skip "systemd-analyze verify $UNIT: systemd cannot run here: $out"
    else
        fail "systemd-analyze verify $UNIT"
        echo "$out" | indent
    fi
fi

# ---- 5. Grafana JSON
shopt -s nullglob
dashboards=(Grafana/*.json)
if (( ${#dashboards[@]} == 0 )); then
    fail "no Grafana/*.json dashboards found"
fi
for f in "${dashboards[@]}"; do
    if out=$(python3 -m json.tool "$f" 2>&1 >/dev/null); then
        pass "JSON $f"
    else
        fail "JSON $f is not valid: $out"
    fi
done

# ---- 6. YAML syntax (docker compose / kubectl are not needed for this much)
yaml_files=(Deploy/compose.yaml Deploy/prometheus/*.yml Deploy/kubernetes/*.yaml Deploy/otel/*.yaml Grafana/provisioning/*.yaml)
if python3 -c 'import yaml' >/dev/null 2>&1; then
    for f in "${yaml_files[@]}"; do
        if out=$(python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$f" 2>&1); then
            pass "YAML $f"
        else
            fail "YAML $f is not valid"
            echo "$out" | tail -n 5 | indent
        fi
    done
else
    skip "YAML syntax of ${yaml_files[*]}: python3 has no yaml module (pip install pyyaml)"
fi

# ---- 7. Metric names against MetricNames.swift
NAMES_FILE=Sources/CeleriacMetrics/MetricNames.swift
if [[ ! -f "$NAMES_FILE" ]]; then
    fail "$NAMES_FILE is missing"
else
    grep -oE '"(celeriac|process)_[a-z0-9_]+"' "$NAMES_FILE" | tr -d '"' | sort -u > "$TMP/known"
    if [[ ! -s "$TMP/known" ]]; then
        fail "no metric names found in $NAMES_FILE"
    fi
    metric_sources=("${dashboards[@]}" Deploy/prometheus/alerts.yml)
    for f in "${metric_sources[@]}"; do
        [[ -f "$f" ]] || { fail "$f is missing"; continue; }
        unknown=()
        count=0
        while read -r name; do
            [[ -n "$name" ]] || continue
            count=$((count + 1))
            grep -qxF "$name" "$TMP/known" && continue
            base=$(sed -E 's/_(bucket|sum|count)$//' <<<"$name")
            if [[ "$base" != "$name" ]] && grep -qxF "$base" "$TMP/known"; then continue; fi
            unknown+=("$name")
        done < <(grep -oE '\b(celeriac|process)_[a-z0-9_]+' "$f" | sort -u)
        if (( ${#unknown[@]} )); then
            fail "$f uses metric names that $NAMES_FILE does not define: ${unknown[*]}"
        elif (( count == 0 )); then
            skip "metric names in $f: it uses no celeriac_* or process_* metric"
        else
            pass "metric names in $f ($count distinct, all in $NAMES_FILE)"
        fi
    done
fi

if (( failures )); then
    echo "check-deploy: $failures check(s) FAILED (see the FAIL lines above)" >&2
    exit 1
fi
echo "check-deploy: all checks passed"
