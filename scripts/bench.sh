#!/usr/bin/env bash
# Celeriac benchmarks: Swift (celeriac-bench) against a raw librabbitmq C baseline
# and against Python Celery, all on the throwaway broker of scripts/broker.sh.
#
# Usage: scripts/bench.sh            (`make bench` starts the broker and builds celeriac-bench first)
#
# Settings (environment):
#   N         messages per AMQP scenario, Swift and C      (default 100000)
#   TASKS_N   tasks for `celeriac-bench tasks`             (default 20000)
#   CELERY_N  tasks per Celery pool run                    (default 5000)
#   SOAK_N    also soak the default worker with SOAK_N tasks in four quarters, PSS after each
#             (bench/memory.py --soak; issue #23 used 1000000, about five minutes)   (default: no soak)
#   CELERIAC_BIN_DIR  directory holding celeriac-bench     (default: swift build -c release --show-bin-path)
#   STATIC_DEMO  celeriac-demo built with --static-swift-stdlib, for the memory stage
#             (default: .build-static/release/celeriac-demo, which `make bench` builds)
#   CELERIAC_BROKER_PORT / CELERIAC_BROKER_DIR are passed on to scripts/broker.sh.
#
# stdout: figure lines "name value unit", then ratio lines; diagnostics on stderr.
# Everything (stdout and stderr) is also written to .run/bench.txt.
#
# Figure names compared (swift/c or swift/celery):
#   amqp.X (celeriac-bench amqp) vs c.amqp.X (bench/amqp_baseline.c)  -> ratio.amqp.X
#   tasks.drain_rate vs celery.solo.drain_rate                          -> ratio.tasks.drain_vs_celery_solo
#   tasks.rtt_p50    vs celery.solo.rtt_p50                             -> ratio.tasks.rtt_p50_vs_celery_solo
#   defaults.drain_rate vs the best celery.X.drain_only_rate            -> ratio.defaults.drain_vs_celery_best
# (`celeriac-bench tasks` and `canvas` measure the broker's round-trip floors in their own run and print those ratios.)
# bench/memory.py (needs a release celeriac-demo beside celeriac-bench) prints memory.* and its own ratio; it also
# measures the statically linked celeriac-demo that Deploy/Dockerfile ships when $STATIC_DEMO is there.
# The "celery canvas" stage (bench/celery_canvas_bench.py) adds celery.canvas.chain100_ms,
# group1000_ms and chord1000_ms; the chord needs redis-server and the `redis` pip package,
# which ensure_redis installs on first use.
# Rates: ratio > 1 means Swift is faster. Latencies: ratio < 1 means Swift is faster.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"
mkdir -p .run

N=${N:-100000}
TASKS_N=${TASKS_N:-20000}
CELERY_N=${CELERY_N:-5000}
OUT="$REPO/.run/bench.txt"
FIGURES="$REPO/.run/bench.figures"
PY="$REPO/.run/venv/bin/python"

for v in N TASKS_N CELERY_N; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: $v must be a positive integer (got '${!v}')" >&2; exit 2; }
done

log() { echo "bench.sh: $*" >&2; }

failures=0

# run_stage LABEL CMD...: run one benchmark; its stdout lines are figures.
run_stage() {
    local label=$1; shift
    log "---- $label: $*"
    local t0=$SECONDS rc=0
    "$@" | tee -a "$FIGURES" || rc=${PIPESTATUS[0]}
    if (( rc != 0 )); then
        log "$label FAILED (exit $rc) after $((SECONDS - t0)) s; continuing"
        failures=$((failures + 1))
    else
        log "$label done in $((SECONDS - t0)) s"
    fi
}

# ensure_redis: the Celery canvas stage needs redis-server and the `redis` Python package for
# its chord figure (Celery's rpc:// backend refuses chords). Installed here, for the bench only,
# when missing; on failure the stage still runs and just emits no chord figure.
ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        log "installing redis-server (apt-get) for the Celery chord figure"
        local sudo=""
        if (( EUID != 0 )) && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
        if ! { $sudo apt-get update -q && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; } >&2; then
            log "note: could not install redis-server; no celery.canvas.chord1000_ms figure"
        fi
    fi
    if ! "$PY" -c 'import redis' >/dev/null 2>&1; then
        log "installing the redis Python package into $("$PY" -c 'import sys; print(sys.prefix)')"
        if ! "$PY" -m pip install -q --disable-pip-version-check 'redis>=4.5' >&2; then
            log "note: pip install redis failed; no celery.canvas.chord1000_ms figure"
        fi
    fi
}

print_ratios() {
    awk '
        # keep only well-formed figure lines: name value unit
        NF == 3 && $1 ~ /^[A-Za-z][A-Za-z0-9_.]*$/ && $2 ~ /^-?[0-9]+(\.[0-9]+)?$/ {
            val[$1] = $2 + 0; order[++n] = $1
        }
        function ratio(name, a, b,   r) {
            if (!(a in val) || !(b in val)) return
            if (val[b] == 0) { printf "bench.sh: %s skipped: %s is 0\n", name, b > "/dev/stderr"; return }
            printf "%s %.2f %s\n", name, val[a] / val[b], unit
        }
        END {
            unit = "swift/c"
            for (i = 1; i <= n; i++) {
                k = order[i]
                if (k ~ /^amqp\./ && !(k in done)) { done[k] = 1; ratio("ratio." k, k, "c." k) }
            }
            unit = "swift/celery"
            ratio("ratio.tasks.drain_vs_celery_solo", "tasks.drain_rate", "celery.solo.drain_rate")
            ratio("ratio.tasks.rtt_p50_vs_celery_solo", "tasks.rtt_p50", "celery.solo.rtt_p50")
            # The worker at the CLI defaults against the best Celery pool (its worker-only drain).
            best = ""
            split("solo prefork threads", pools, " ")
            for (i in pools) {
                k = "celery." pools[i] ".drain_only_rate"
                if ((k in val) && (best == "" || val[k] > val[best])) best = k
            }
            if (best != "") ratio("ratio.defaults.drain_vs_celery_best", "defaults.drain_rate", best)
        }
    ' "$FIGURES"
}

main() {
    : > "$FIGURES"
    log "started $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname) ($(nproc) cores); N=$N TASKS_N=$TASKS_N CELERY_N=$CELERY_N"

    local env_lines
    env_lines=$("$REPO/scripts/broker.sh" env)
    eval "$env_lines"
    local url=$CELERIAC_TEST_BROKER_URL
    if ! "$REPO/scripts/broker.sh" status >/dev/null 2>&1; then
        log "error: the broker is not running; start it with scripts/broker.sh start (make bench does)"
        return 1
    fi
    log "broker $url"

    # C baseline binary
    local cbin="$REPO/.run/amqp_baseline"
    if ! gcc -O2 -o "$cbin" "$REPO/bench/amqp_baseline.c" -lrabbitmq; then
        log "error: could not build the C baseline (needs gcc and librabbitmq-dev)"
        cbin=""
        failures=$((failures + 1))
    fi

    # Swift benchmark binary (built by `make bench`)
    local bindir=${CELERIAC_BIN_DIR:-}
    if [[ -z "$bindir" ]]; then
        bindir=$(swift build -c release --show-bin-path 2>/dev/null) || bindir=""
    fi
    local sbin="$bindir/celeriac-bench"
    if [[ -z "$bindir" || ! -x "$sbin" ]]; then
        log "note: ${sbin:-celeriac-bench} not found; skipping the Swift figures (build it with: swift build -c release --product celeriac-bench)"
        sbin=""
    fi

    [[ -n "$sbin" ]] && run_stage "swift amqp" "$sbin" amqp --broker "$url" --n "$N"
    [[ -n "$cbin" ]] && run_stage "c amqp" "$cbin" --broker "$url" --n "$N"
    [[ -n "$sbin" ]] && run_stage "swift tasks" "$sbin" tasks --broker "$url" --n "$TASKS_N"
    [[ -n "$sbin" ]] && run_stage "swift defaults" "$sbin" defaults --broker "$url" --n "$TASKS_N"
    [[ -n "$sbin" ]] && run_stage "swift pools" "$sbin" pools --broker "$url" --n "$TASKS_N"
    [[ -n "$sbin" ]] && run_stage "swift compact" "$sbin" compact --broker "$url" --n "$TASKS_N"
    [[ -n "$sbin" ]] && run_stage "swift canvas" "$sbin" canvas --broker "$url"
    [[ -n "$sbin" ]] && run_stage "swift coordination" "$sbin" coordination --broker "$url" --n 2000 --rounds 200

    if [[ -x "$PY" ]]; then
        run_stage "celery solo" "$PY" "$REPO/bench/celery_bench.py" --broker "$url" --n "$CELERY_N" --pool solo
        run_stage "celery prefork" "$PY" "$REPO/bench/celery_bench.py" --broker "$url" --n "$CELERY_N" --pool prefork --skip-enqueue
        run_stage "celery threads" "$PY" "$REPO/bench/celery_bench.py" --broker "$url" --n "$CELERY_N" --pool threads --skip-enqueue
        if [[ -n "$bindir" && -x "$bindir/celeriac-demo" ]]; then
            local static_demo=${STATIC_DEMO:-$REPO/.build-static/release/celeriac-demo} static_args=()
            if [[ -x "$static_demo" ]]; then
                static_args=(--celeriac-static "$static_demo")
            else
                log "note: $static_demo not found; measuring the dynamically linked worker only (make bench builds it)"
            fi
            run_stage "memory" "$PY" "$REPO/bench/memory.py" --broker "$url" --celeriac "$bindir/celeriac-demo" \
                "${static_args[@]}" --n "$TASKS_N"
            if [[ -n "${SOAK_N:-}" ]]; then
                run_stage "memory soak" "$PY" "$REPO/bench/memory.py" --broker "$url" --celeriac "$bindir/celeriac-demo" --soak "$SOAK_N"
            fi
        else
            log "note: $bindir/celeriac-demo not found; skipping the memory figures (swift build -c release --product celeriac-demo)"
        fi
        ensure_redis
        run_stage "celery canvas" "$PY" "$REPO/bench/celery_canvas_bench.py" --broker "$url"
    else
        log "note: $PY not found; skipping the Celery figures (run scripts/bootstrap.sh)"
    fi

    print_ratios
    log "finished $(date -u +%Y-%m-%dT%H:%M:%SZ); $failures stage(s) failed; output in $OUT"
    (( failures == 0 ))
}

# All output to the terminal and to .run/bench.txt.
: > "$OUT"
set +e
main > >(tee -a "$OUT") 2> >(tee -a "$OUT" >&2)
rc=$?
set -e
# let the tee processes flush before returning
wait 2>/dev/null || true
exit "$rc"
