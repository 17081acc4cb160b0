#!/usr/bin/env bash
# Idempotent machine + repo bootstrap for Celeriac:
#   1. Debian packages (librabbitmq-dev, rabbitmq-server, prometheus, openssl, ...)
#   2. the Debian rabbitmq-server system service is not left running
#      (tests use scripts/broker.sh's private node instead)
#   3. Python venv at .run/venv with Celery 5.x and the OpenTelemetry SDK + Celery instrumentation
#      (for interop and cross-language tracing tests), and PyYAML + kubernetes-validate for scripts/check-deploy.sh
# Safe to run repeatedly, as root, with no stdin.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VENV="$REPO/.run/venv"
PACKAGES=(librabbitmq-dev libssl-dev rabbitmq-server prometheus openssl iproute2 procps python3 python3-venv chromium-headless-shell)

say() { echo "bootstrap.sh: $*"; }
die() { echo "bootstrap.sh: error: $*" >&2; exit 1; }

exec </dev/null

# ---- 1. packages
missing=()
for p in "${PACKAGES[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ "$st" == installed ]] || missing+=("$p")
done
if (( ${#missing[@]} )); then
    SUDO=()
    if (( EUID != 0 )); then
        command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
        SUDO=(sudo -n)
    fi
    say "installing missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Keep maintainer scripts from starting services (e.g. the system
    # rabbitmq-server, which may fail in a container and would grab 5672).
    POLICY=/usr/sbin/policy-rc.d
    if [[ ! -e "$POLICY" ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
        "${SUDO[@]}" chmod 755 "$POLICY"
        trap '"${SUDO[@]}" rm -f "$POLICY"' EXIT
    fi
    "${SUDO[@]}" apt-get update -qq >/dev/null || die "apt-get update failed"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null \
        || die "apt-get install failed: ${missing[*]}"
    say "packages installed: ${missing[*]}"
else
    say "packages: all present (${PACKAGES[*]})"
fi

# ---- 2. the distro's rabbitmq-server service must not be running/needed.
# Only the system node (rabbit@<host>) is stopped, via the init script; our
# private celeriac<port>@localhost node is managed by scripts/broker.sh.
if (( ${#missing[@]} )) && [[ " ${missing[*]} " == *" rabbitmq-server "* ]]; then
    if command -v service >/dev/null 2>&1; then
        service rabbitmq-server stop >/dev/null 2>&1 || true
    fi
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
        systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
    fi
    say "system rabbitmq-server service stopped (not used; tests run a private node)"
else
    say "system rabbitmq-server service: untouched (not freshly installed)"
fi

# ---- 3. python venv with celery
PY=${PYTHON:-python3}
PIP_REQUIREMENTS=('celery>=5.3,<6' 'flower>=2,<3' 'opentelemetry-sdk==1.45.2' 'opentelemetry-instrumentation-celery==0.66b2'
                  'kubernetes-validate==1.37.0' 'PyYAML==6.0.4')
PY_IMPORTS='import celery, flower, opentelemetry.sdk.trace, opentelemetry.instrumentation.celery, kubernetes_validate, yaml'
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "$PY_IMPORTS" >/dev/null 2>&1; then
    say "venv: $VENV ok (celery $("$VENV/bin/python" -c 'import celery; print(celery.__version__)'))"
else
    command -v "$PY" >/dev/null || die "python3 not found"
    mkdir -p "$REPO/.run"
    if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$VENV"
        "$PY" -m venv "$VENV" || die "python3 -m venv failed (is python3-venv installed?)"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PIP_REQUIREMENTS[@]}" \
        || die "pip install ${PIP_REQUIREMENTS[*]} failed"
    "$VENV/bin/python" -c "$PY_IMPORTS" || die "celery/flower/opentelemetry/kubernetes-validate/yaml not importable after install"
    say "venv: created $VENV with celery $("$VENV/bin/python" -c 'import celery; print(celery.__version__)')"
fi
