#!/usr/bin/env bash
# Validates Deploy/ and Grafana/ offline (no docker, no network):
#   1. promtool check config Deploy/prometheus/prometheus.yml   (also resolves and checks its rule_files)
#   2. promtool check rules  Deploy/prometheus/alerts.yml
#   3. promtool test rules   Deploy/prometheus/alerts.test.yml  (if present)
#   4. systemd-analyze verify on Deploy/systemd/celeriac-worker@.service and celeriac-beat.service (skipped, with a
#      note, if systemd-analyze is unavailable)
#   5. JSON validity of Grafana/*.json (python3 -m json.tool)
#   6. YAML validity of the other YAML files (PyYAML from the venv)
#   7. every celeriac_* / process_* metric name used in Grafana/*.json and Deploy/prometheus/alerts.yml exists
#      in Sources/CeleriacMetrics/MetricNames.swift, the one file that names every metric (histogram suffixes _bucket/_sum/_count
#      stripped)
#   8. Deploy/kubernetes/*.yaml with scripts/check-kubernetes.py: against the Kubernetes 1.30 and newest bundled
#      OpenAPI schemas, offline and strict (kubernetes-validate, which bundles them; a kind without a schema fails,
#      only the PodMonitor CRD is exempt and checked field by field instead), then beyond syntax: Deployment
#      selectors match their pods' labels, probes are /readyz (readiness) and /healthz (liveness) on the "metrics"
#      container port that --metrics-port opens, beat has 2 replicas with the lock, the PodDisruptionBudget and the
#      PodMonitors select the worker (and beat) pods and scrape their metrics port's /metrics under the job names
#      of prometheus.yml. Then its --self-test: broken variants of the manifests must each be rejected.
#   9. Deploy/compose.yaml structure (docker compose config needs the compose plugin, absent here): services
#      have an image or a build with an existing Dockerfile, relative volume sources exist, depends_on names
#      services, healthchecks have a test, named volumes are declared
#
# The Python steps (6, 8, 9) use .run/venv (scripts/bootstrap.sh installs PyYAML and kubernetes-validate there,
# pinned); without it they FAIL, naming the command to run, rather than skip.
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

# The venv's python, with PyYAML and kubernetes-validate; venv_problem says why it cannot be used.
VENV_PY=.run/venv/bin/python
BOOTSTRAP_HINT="run scripts/bootstrap.sh (it installs PyYAML and kubernetes-validate, pinned, into .run/venv)"
venv_problem=""
if [[ ! -x "$VENV_PY" ]]; then
    venv_problem="$VENV_PY is missing"
elif ! out=$("$VENV_PY" -c 'import yaml, kubernetes_validate' 2>&1); then
    venv_problem="$VENV_PY cannot import yaml and kubernetes_validate ($(tail -n1 <<<"$out"))"
fi

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

# ---- 4. systemd units
# verify checks that ExecStart's binary exists. It is installed at /usr/local/bin only on real hosts, so a copy of
# each unit points at an executable stub instead; everything else is verified as written. A template is verified
# through an instance (celeriac-worker@check). Any diagnostic (even an "Unknown key" warning, exit status 0) fails.
units=(Deploy/systemd/celeriac-worker@.service Deploy/systemd/celeriac-beat.service)
mkdir -p "$TMP/unit"
printf '#!/bin/sh\nexit 0\n' > "$TMP/unit/celeriac-demo"
chmod 755 "$TMP/unit/celeriac-demo"
for UNIT in "${units[@]}"; do
    file=$(basename "$UNIT")
    instance=${file/@./@check.}
    if [[ ! -f "$UNIT" ]]; then
        fail "$UNIT is missing"
        continue
    elif ! command -v systemd-analyze >/dev/null 2>&1; then
        skip "systemd-analyze verify $UNIT: systemd-analyze is not installed here"
        continue
    fi
    BIN=$(sed -n 's#^ExecStart=\([^ ]*\).*#\1#p' "$UNIT" | head -n1)
    sed "s#^ExecStart=$BIN#ExecStart=$TMP/unit/celeriac-demo#" "$UNIT" > "$TMP/unit/$file"
    out=$(cd "$TMP/unit" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify "./$instance" 2>&1)
    rc=$?
    out=$(sed "s#$TMP/unit/#Deploy/systemd/#g" <<<"$out")
    if (( rc == 0 )) && [[ -z "$out" ]]; then
        pass "systemd-analyze verify $UNIT (as ${instance}; ExecStart=$BIN replaced by a stub)"
    elif [[ "$out" == *"System has not been booted with systemd"* || "$out" == *"Failed to initialize manager"* ]]; then
        skip "systemd-analyze verify $UNIT: systemd cannot run here: $out"
    else
        fail "systemd-analyze verify $UNIT"
        echo "$out" | indent
    fi
done

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
if [[ -z "$venv_problem" ]]; then
    for f in "${yaml_files[@]}"; do
        if out=$("$VENV_PY" -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$f" 2>&1); then
            pass "YAML $f"
        else
            fail "YAML $f is not valid"
            echo "$out" | tail -n 5 | indent
        fi
    done
else
    fail "YAML syntax of ${yaml_files[*]}: $venv_problem; $BOOTSTRAP_HINT"
fi

# ---- 7. Metric names against MetricNames.swift
NAMES_FILE=Sources/CeleriacMetrics/MetricNames.swift
if [[ ! -f "$NAMES_FILE" ]]; then
    fail "$NAMES_FILE is missing"
else
    grep -hoE '"(celeriac|process)_[a-z0-9_]+"' "$NAMES_FILE" | tr -d '"' | sort -u > "$TMP/known"
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

# ---- 8. Kubernetes manifests: schemas (offline; they ship inside kubernetes-validate) and what they must agree on
K8S_DIR=Deploy/kubernetes
K8S_CHECK=(scripts/check-kubernetes.py --prometheus-config "$PROM_DIR/prometheus.yml" "$K8S_DIR")
if [[ -n "$venv_problem" ]]; then
    fail "Kubernetes manifests $K8S_DIR: $venv_problem; $BOOTSTRAP_HINT"
else
    if out=$("$VENV_PY" "${K8S_CHECK[@]}" 2>&1); then
        pass "Kubernetes $K8S_DIR: $out"
    else
        fail "Kubernetes $K8S_DIR (scripts/check-kubernetes.py)"
        echo "$out" | indent
    fi
    # The checks above must catch what they claim to: each broken variant (in memory) has to be rejected.
    if out=$("$VENV_PY" "${K8S_CHECK[@]:0:1}" --self-test "${K8S_CHECK[@]:1}" 2>&1); then
        pass "Kubernetes check self-test: $out"
    else
        fail "Kubernetes check self-test (scripts/check-kubernetes.py --self-test)"
        echo "$out" | indent
    fi
fi

# ---- 9. compose.yaml structure. `docker compose config` would be the real check, but this machine has neither
# the compose plugin nor a Docker engine, so the parts that break a `compose up` silently are checked here.
if [[ -n "$venv_problem" ]]; then
    fail "compose structure Deploy/compose.yaml: $venv_problem; $BOOTSTRAP_HINT"
else
    if out=$("$VENV_PY" - Deploy/compose.yaml <<'PY' 2>&1
import os, sys, yaml
path = sys.argv[1]
base = os.path.dirname(path)
doc = yaml.safe_load(open(path))
problems = []
services = doc.get("services") or {}
volumes = set((doc.get("volumes") or {}).keys())
if not services:
    problems.append("no services")
for name, svc in services.items():
    if "image" not in svc and "build" not in svc:
        problems.append(f"{name}: neither image nor build")
    build = svc.get("build")
    if isinstance(build, dict):
        context = os.path.join(base, build.get("context", "."))
        dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
        if not os.path.isdir(context): problems.append(f"{name}: build context {context} missing")
        if not os.path.isfile(dockerfile): problems.append(f"{name}: Dockerfile {dockerfile} missing")
    deps = svc.get("depends_on") or []
    for dep in (deps.keys() if isinstance(deps, dict) else deps):
        if dep not in services: problems.append(f"{name}: depends_on unknown service {dep}")
    for volume in svc.get("volumes") or []:
        source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
        if source.startswith("."):
            if not os.path.exists(os.path.join(base, source)): problems.append(f"{name}: volume source {source} missing")
        elif source and not source.startswith("/") and source not in volumes:
            problems.append(f"{name}: named volume {source} not declared under volumes:")
    health = svc.get("healthcheck")
    if health is not None and not health.get("test"):
        problems.append(f"{name}: healthcheck without test")
    for port in svc.get("ports") or []:
        if not isinstance(port, str) or not port.split(":")[-1].split("/")[0].isdigit():
            problems.append(f"{name}: port {port!r} is not a quoted HOST:CONTAINER string")
if problems:
    print("\n".join(problems)); sys.exit(1)
print(f"{len(services)} services: {', '.join(services)}")
PY
    ); then
        pass "compose structure Deploy/compose.yaml ($out; not 'docker compose config': no compose plugin here)"
    else
        fail "compose structure Deploy/compose.yaml"
        echo "$out" | indent
    fi
fi

if (( failures )); then
    echo "check-deploy: $failures check(s) FAILED (see the FAIL lines above)" >&2
    exit 1
fi
echo "check-deploy: all checks passed"
