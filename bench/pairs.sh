#!/usr/bin/env bash
# Interleaved before/after pairs of `celeriac-bench tasks` for both pools, as issue #21 and #23 ask for a change
# that must not cost speed: the box is noisy, so runs alternate and medians are compared.
#
# Usage: bench/pairs.sh BEFORE_BIN AFTER_BIN [PAIRS] [POOLS]
#   BEFORE_BIN / AFTER_BIN: directories holding a release celeriac-bench (swift build -c release in two checkouts)
#   PAIRS: pairs per pool (default 5); POOLS: "async process" (default)
# Needs a broker (scripts/broker.sh start; CELERIAC_TEST_BROKER_URL is used when set). TASKS_N (default 20000)
# and ROUNDS (default 1000) are passed on. stdout: one row per run, then the medians and after/before ratios.
set -euo pipefail
before=${1:?before bin dir}; after=${2:?after bin dir}; pairs=${3:-5}; pools=${4:-async process}
broker=${CELERIAC_TEST_BROKER_URL:-amqp://guest:guest@127.0.0.1:5682/%2F}
n=${TASKS_N:-20000}; rounds=${ROUNDS:-1000}
rows=$(mktemp); trap 'rm -f "$rows"' EXIT
figure() { awk -v k="$1" '$1 == k { print $2 }' <<<"$2"; }
for pool in $pools; do
    for i in $(seq 1 "$pairs"); do
        for side in before after; do
            bin=$before; [[ $side == after ]] && bin=$after
            out=$("$bin/celeriac-bench" tasks --broker "$broker" --n "$n" --rounds "$rounds" --pool "$pool" 2>/dev/null)
            row="$pool $i $side $(figure tasks.drain_rate "$out") $(figure tasks.drain_cpu_per_task "$out") $(figure tasks.rtt_p50 "$out") $(figure tasks.rtt_p99 "$out")"
            echo "$row" | tee -a "$rows"
        done
    done
done
echo "# pool figure median_before median_after after/before"
python3 - "$rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
names = ["drain_tasks_per_s", "cpu_us_per_task", "rtt_p50_ms", "rtt_p99_ms"]
for pool in dict.fromkeys(r[0] for r in rows):
    for k, name in enumerate(names):
        med = {side: statistics.median(float(r[3 + k]) for r in rows if r[0] == pool and r[2] == side) for side in ("before", "after")}
        print(f"{pool} {name} {med['before']:.3f} {med['after']:.3f} {med['after'] / med['before']:.3f}")
PY
