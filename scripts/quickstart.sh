#!/usr/bin/env bash
# Quickstart demo: a celeriac-demo worker (concurrency 4) against the private broker,
# a few calls, then the worker keeps running until Ctrl-C.
# Expects: scripts/broker.sh start, and `swift build -c release --product celeriac-demo`
# (both done by `make run`).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

METRICS_PORT=${CELERIAC_METRICS_PORT:-9808}
if [[ -n "${CELERIAC_DEMO_BIN:-}" ]]; then   # override, e.g. a debug build
    DEMO=$CELERIAC_DEMO_BIN
else
    DEMO="$(swift build -c release --show-bin-path)/celeriac-demo"
fi
[[ -x "$DEMO" ]] || { echo "quickstart.sh: $DEMO not found; run: swift build -c release --product celeriac-demo" >&2; exit 1; }

"$REPO/scripts/broker.sh" status >/dev/null 2>&1 \
    || { echo "quickstart.sh: broker not running; run: scripts/broker.sh start" >&2; exit 1; }
eval "$("$REPO/scripts/broker.sh" env)"
BROKER_URL=$CELERIAC_TEST_BROKER_URL

worker_pid=""
beat_pid=""
stop_worker() {
    if [[ -n "$beat_pid" ]] && kill -0 "$beat_pid" 2>/dev/null; then
        echo "quickstart.sh: stopping beat (pid $beat_pid)" >&2
        kill -TERM "$beat_pid" 2>/dev/null || true
        wait "$beat_pid" 2>/dev/null || true
    fi
    beat_pid=""
    if [[ -n "$worker_pid" ]] && kill -0 "$worker_pid" 2>/dev/null; then
        echo "quickstart.sh: stopping worker (pid $worker_pid)" >&2
        kill -TERM "$worker_pid" 2>/dev/null || true
        wait "$worker_pid" 2>/dev/null || true
    fi
    worker_pid=""
}
trap stop_worker EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

http_ok() { # URL path on 127.0.0.1:$METRICS_PORT -> 0 if HTTP 2xx
    local path=$1
    if command -v curl >/dev/null 2>&1; then
        curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:${METRICS_PORT}${path}"
    else
        local status
        status=$(
            exec 2>/dev/null
            exec 3<>"/dev/tcp/127.0.0.1/${METRICS_PORT}" || exit 1
            printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
            timeout 2 head -n1 <&3
        ) || return 1
        [[ "$status" =~ ^HTTP/[0-9.]+\ 2[0-9][0-9] ]]
    fi
}

echo "quickstart.sh: starting worker: celeriac-demo worker -c 4 --metrics-port $METRICS_PORT --broker $BROKER_URL" >&2
"$DEMO" worker -c 4 --metrics-port "$METRICS_PORT" --broker "$BROKER_URL" &
worker_pid=$!

deadline=$((SECONDS + 30))
until http_ok /readyz; do
    if ! kill -0 "$worker_pid" 2>/dev/null; then
        wait "$worker_pid" && rc=0 || rc=$?
        worker_pid=""
        echo "quickstart.sh: worker exited during startup (status $rc)" >&2
        exit 1
    fi
    if (( SECONDS >= deadline )); then
        echo "quickstart.sh: worker not ready at http://127.0.0.1:${METRICS_PORT}/readyz after 30s" >&2
        exit 1
    fi
    sleep 0.2
done
echo "quickstart.sh: worker ready" >&2

set -x
"$DEMO" call demo.add --args '[2,3]' --wait --broker "$BROKER_URL"
"$DEMO" call demo.xsum --args '[[1,2,3,4]]' --wait --broker "$BROKER_URL"
"$DEMO" call demo.flaky --args '[2]' --wait --broker "$BROKER_URL"
"$DEMO" call demo.add --args '[1,1]' --countdown 2 --wait --broker "$BROKER_URL"
"$DEMO" call demo.fail --args '["a failure, on purpose"]' --wait --broker "$BROKER_URL" || true
"$DEMO" canvas --broker "$BROKER_URL"
{ set +x; } 2>/dev/null

# Beat beside the worker: the demo schedule sends demo.add(1, 2) every 2 s (and a per-minute crontab entry).
BEAT_METRICS_PORT=${CELERIAC_BEAT_METRICS_PORT:-9809}
mkdir -p "$REPO/.run"
echo "quickstart.sh: starting beat: celeriac-demo beat --state .run/beat-state.json --metrics-port $BEAT_METRICS_PORT" >&2
"$DEMO" beat --state "$REPO/.run/beat-state.json" --metrics-port "$BEAT_METRICS_PORT" --broker "$BROKER_URL" &
beat_pid=$!

echo "Worker and beat running; metrics at http://127.0.0.1:${METRICS_PORT}/metrics (worker) and :${BEAT_METRICS_PORT}/metrics (beat); Ctrl-C to stop"
wait "$worker_pid" && rc=0 || rc=$?
worker_pid=""
exit "$rc"
