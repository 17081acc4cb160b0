#!/usr/bin/env bash
# Run the Swift test suite against a private RabbitMQ node (scripts/broker.sh).
# Usage: scripts/test.sh [--filter PATTERN] [extra swift test args...]
# Starts the broker if needed and stops it on exit only if this script started it.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"
mkdir -p .run

BROKER="$REPO/scripts/broker.sh"
started_broker=0
if ! "$BROKER" status >/dev/null 2>&1; then
    started_broker=1
fi
cleanup() {
    local rc=$?
    if (( started_broker )); then
        "$BROKER" stop || true
    fi
    # The chaos node (restart/freeze tests) is started by the tests themselves on first use.
    local chaos_port=$(( ${CELERIAC_BROKER_PORT:-5682} + 10 ))
    if CELERIAC_BROKER_PORT=$chaos_port CELERIAC_BROKER_DIR="$REPO/.run/broker-chaos" "$BROKER" status >/dev/null 2>&1; then
        CELERIAC_BROKER_PORT=$chaos_port CELERIAC_BROKER_DIR="$REPO/.run/broker-chaos" "$BROKER" stop || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

broker_env=$("$BROKER" start)
eval "$broker_env"
export CELERIAC_TEST_BROKER_URL CELERIAC_TEST_BROKER_TLS_URL CELERIAC_TEST_TLS_DIR \
       CELERIAC_TEST_BROKER_CTL CELERIAC_TEST_BROKER_PORT CELERIAC_TEST_BROKER_PROMETHEUS_PORT
export CELERIAC_TEST_PYTHON="$REPO/.run/venv/bin/python"
if [[ ! -x "$CELERIAC_TEST_PYTHON" ]]; then
    echo "test.sh: warning: $CELERIAC_TEST_PYTHON missing (run scripts/bootstrap.sh); Celery interop tests may skip/fail" >&2
fi

args=()
while (( $# )); do
    case "$1" in
        --filter) [[ $# -ge 2 ]] || { echo "test.sh: --filter needs an argument" >&2; exit 2; }
                  args+=(--filter "$2"); shift 2 ;;
        --filter=*) args+=(--filter "${1#--filter=}"); shift ;;
        *) args+=("$1"); shift ;;
    esac
done

# Deploy/ and Grafana/ are checked with the real tools (promtool, systemd-analyze) before the Swift suite.
"$REPO/scripts/check-deploy.sh"

swift build --build-tests

set +e
swift test --skip-build --no-parallel "${args[@]}" 2>&1 | tee .run/test.log
status=${PIPESTATUS[0]}
set -e
echo "test.sh: swift test exited with status $status (log: .run/test.log)" >&2
exit "$status"
