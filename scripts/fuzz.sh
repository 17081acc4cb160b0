#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ (Swift's -sanitize=fuzzer) in .build-fuzz and runs each one for a fixed
# time. Exits non-zero on any finding (crash, trap, broken invariant, >10 s input); the input is saved under
# .run/fuzz/artifacts/ (reproduce: CELERIAC_FUZZ_TARGET=T .build-fuzz/debug/celeriac-fuzz FILE).
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      targets: decoder crontab url (default: all)
#   make fuzz            60 s per target
#   make test            runs this with 15 s per target after the Swift suite
# Environment:
#   FUZZ_SANITIZER=address   also build with AddressSanitizer (separate dir .build-fuzz-address; slower)
#   FUZZ_BUILD=0             skip the build (reuse the last one)
#   FUZZ_RUNS=N              stop each target after N inputs (SECONDS_PER_TARGET stays the cap), with a fixed
#                            libFuzzer seed (FUZZ_SEED, default 1): the same inputs on every run, so a test run
#                            fails only on a regression. Without it, inputs are random and time-bounded
#                            (exploration: `make fuzz`); a finding's input goes into Fuzz/corpus/ as a seed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

seconds=${1:-60}
[[ $# -gt 0 ]] && shift
targets=("$@")
(( ${#targets[@]} )) || targets=(decoder crontab url)
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: SECONDS_PER_TARGET must be a whole number, got '$seconds'" >&2; exit 2; }

sanitize=fuzzer
build=.build-fuzz
if [[ -n "${FUZZ_SANITIZER:-}" ]]; then
    sanitize="fuzzer,${FUZZ_SANITIZER}"
    build=".build-fuzz-${FUZZ_SANITIZER}"
fi

if [[ "${FUZZ_BUILD:-1}" != 0 ]]; then
    echo "fuzz.sh: building celeriac-fuzz (-sanitize=$sanitize) in $build" >&2
    swift build --build-path "$build" --product celeriac-fuzz \
        -Xswiftc -sanitize="$sanitize" -Xswiftc -parse-as-library -Xswiftc -DCELERIAC_FUZZ
fi
bin="$build/debug/celeriac-fuzz"
[[ -x "$bin" ]] || { echo "fuzz.sh: $bin missing; run without FUZZ_BUILD=0" >&2; exit 2; }

mkdir -p .run/fuzz/artifacts
status=0
for t in "${targets[@]}"; do
    case "$t" in
        decoder) max_len=8192 ;;
        crontab) max_len=256 ;;
        url) max_len=1024 ;;
        *) echo "fuzz.sh: unknown target '$t' (decoder, crontab, url)" >&2; exit 2 ;;
    esac
    work=".run/fuzz/$t"        # grows locally; the committed seeds in Fuzz/corpus/$t are read, never written
    log=".run/fuzz/$t.log"
    mkdir -p "$work"
    dict=()
    limits=()
    [[ -n "${FUZZ_RUNS:-}" ]] && limits=(-runs="$FUZZ_RUNS" -seed="${FUZZ_SEED:-1}")
    [[ -f "Fuzz/dict/$t.dict" ]] && dict=(-dict="Fuzz/dict/$t.dict")
    # Swift's own crash backtracer would exit before libFuzzer saves the input.
    if SWIFT_BACKTRACE=enable=no CELERIAC_FUZZ_TARGET="$t" "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$max_len" -artifact_prefix=".run/fuzz/artifacts/$t-" "${dict[@]}" "${limits[@]}" "$work" "Fuzz/corpus/$t" >"$log" 2>&1; then
        echo "fuzz.sh: $t: ok ($(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | tr -s ' \t' ' '))"
    else
        status=1
        echo "fuzz.sh: $t: FINDING (log: $log)" >&2
        grep -E "Fatal error|ERROR|SUMMARY|Test unit written|fuzz invariant" "$log" | cut -c1-400 >&2 || tail -20 "$log" >&2
    fi
done
exit "$status"
