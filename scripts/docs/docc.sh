#!/usr/bin/env bash
# Builds the API documentation of Celeriac's library modules as one combined DocC archive (the doc comments and the
# articles in Sources/*/*.docc), with swift-docc-plugin, which Package.swift adds only when CELERIAC_DOCC is set.
#
# Usage: scripts/docs/docc.sh [--check] [OUTPUT_DIR]
#   --check      warnings are errors (a broken ``symbol`` link, an undocumented parameter); used by check-docs.sh
#   OUTPUT_DIR   where the archive goes (default .build/docs/Celeriac.doccarchive); preview it with
#                `CELERIAC_DOCC=1 swift package --disable-sandbox preview-documentation --target CeleriacCore`
# Exit status 0 when the archive was built (and, with --check, without a warning).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$REPO"

strict=()
output=.build/docs/Celeriac.doccarchive
for a in "$@"; do
    case "$a" in
        --check) strict=(--warnings-as-errors) ;;
        -*) echo "docc.sh: unknown option '$a'" >&2; exit 2 ;;
        *) output=$a ;;
    esac
done

targets=(CeleriacCore CeleriacCanvas CeleriacWire CeleriacBroker CeleriacMessaging CeleriacWorker CeleriacBeat
         CeleriacCoordination CeleriacTesting CeleriacAMQP)
args=()
for t in "${targets[@]}"; do args+=(--target "$t"); done
mkdir -p "$(dirname "$output")"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
started=$SECONDS
if CELERIAC_DOCC=1 swift package --disable-sandbox generate-documentation "${args[@]}" \
        --enable-experimental-combined-documentation "${strict[@]}" --output-path "$output" >"$log" 2>&1; then
    echo "check-docs: docc: the documentation of ${#targets[@]} modules builds$([[ ${#strict[@]} -gt 0 ]] && echo ' without a warning') in $((SECONDS - started)) s ($output)" >&2
else
    grep -E "^(error|warning): " "$log" | grep -v "unhandled; explicitly declare them as resources" | sed 's/^/check-docs: FAIL docc: /' >&2 || true
    grep -A3 -E "^(error|warning): '" "$log" | grep -- "-->" | sed 's/^/    /' >&2 || true
    echo "check-docs: FAIL docc: fix the doc comments or articles above (scripts/docs/docc.sh --check to rerun)" >&2
    exit 1
fi
