#!/usr/bin/env bash
# Multi-host fault-injection test bed (issue #9): builds celeriac-demo, then runs Tests/Chaos/chaos.py, which
# creates network namespaces (a switch + broker/worker/beat/client hosts), RabbitMQ nodes and workers inside
# them, injects faults and reconciles an exact ledger per scenario. Needs root (ip netns), iproute2,
# rabbitmq-server, prometheus and the repo venv (.run/venv, from scripts/bootstrap.sh).
#
# Usage: scripts/chaos.sh [--short] [SCENARIO...]
#   --short      CI form: small workloads, debug build (what `make test` runs)
#   (default)    full form: 20,000 adds + chains + a chord of 1,000, release build (`make chaos`)
#   SCENARIO     steady worker-kill broker-restart connection-faults partition cluster beat-failover, or 1-7
#                (opt-in, not in the default set: cluster-grown / 8)
# Report: .run/chaos/report.json; logs: .run/chaos/logs/. Exit status non-zero if any scenario fails.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

short=0
args=()
for a in "$@"; do
    case "$a" in
        --short) short=1; args+=(--short) ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) args+=("$a") ;;
    esac
done

if [[ $(id -u) -ne 0 ]]; then
    echo "chaos.sh: error: needs root for network namespaces (ip netns add); not skipping" >&2
    exit 2
fi
for tool in ip prometheus python3 flock; do
    command -v "$tool" >/dev/null || { echo "chaos.sh: error: '$tool' not found (run scripts/bootstrap.sh)" >&2; exit 2; }
done
[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || { echo "chaos.sh: error: rabbitmq-server not installed" >&2; exit 2; }
[[ -x .run/venv/bin/python ]] || { echo "chaos.sh: error: .run/venv missing (run scripts/bootstrap.sh)" >&2; exit 2; }

if (( short )); then config=debug; else config=release; fi
# One Swift build at a time on this machine.
echo "chaos.sh: building celeriac-demo ($config)" >&2
flock /tmp/celeriac-swift.lock swift build -c "$config" --product celeriac-demo >&2

exec python3 "$REPO/Tests/Chaos/chaos.py" --bin "$REPO/.build/$config/celeriac-demo" "${args[@]}"
