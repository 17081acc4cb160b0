#!/usr/bin/env bash
# Checks that the documentation is true: run by `make test` after the Swift suite, from the repository root.
#
# Usage: scripts/check-docs.sh [--offline]
#   --offline   skip running README.md's commands (no broker, no binary needed); every other check still runs
# Environment:
#   CELERIAC_DEMO   the celeriac-demo binary whose help texts and commands are checked
#                   (default: .build/debug/celeriac-demo, built by scripts/test.sh)
#   CELERIAC_BROKER_PORT / CELERIAC_BROKER_DIR   which private broker to use (see scripts/broker.sh)
#
# What is checked (the work is in scripts/docs/check_docs.py and scripts/docs/gen-config-reference.sh):
#
# 1. Links. Every relative link in README.md, CONTRIBUTING.md, bench/RESULTS.md and docs/*.md points to a file
#    that exists, and every #anchor to a heading of the target page (GitHub's anchors: the heading in lower case,
#    spaces as '-', punctuation dropped). Links to http(s) and other schemes are not fetched.
# 2. README commands. Every fenced shell block (sh, bash, shell, console) in README.md carries a mark on the line
#    before it; an unmarked block fails. The blocks are handled in document order, with the private broker
#    running, CELERIAC_BROKER_URL pointing at it, the repository root as working directory and `celeriac-demo`
#    on PATH meaning $CELERIAC_DEMO. "Checked" means, per mark:
#      <!-- check: run -->
#          each command of the block (backslash continuations joined, comment lines dropped) runs with bash and
#          must exit with status 0 within 120 s. A trailing comment `# -> TEXT` also requires an output line
#          (stdout or stderr) that reads TEXT, whitespace squeezed; `# -> TEXT (exit N)` expects exit status N.
#      <!-- check: background ready=URL -->
#          the block's single command is started in its own session (after checking that URL does not already
#          answer, which would mean something else holds the port), then URL is polled every 0.5 s, at most
#          120 times, until it answers 2xx; the command must not exit meanwhile. It keeps running for the
#          blocks after it, and gets SIGTERM at the end of the check (or when a later block fails); it must then
#          exit cleanly within 40 s (a warm shutdown). Its log is in .run/check-docs/.
#      <!-- check: skip REASON -->
#          not run; the reason is printed. For commands that build the release, run the test suite itself, need
#          root, or would change the machine.
# 3. Swift examples. Every ```swift block in README.md and docs/*.md has `<!-- example: NAME -->` on the line
#    before it, and the names are unique. (The test suite extracts and compiles them by these names.)
# 4. Configuration reference. scripts/docs/gen-config-reference.sh regenerates docs/configuration.md from
#    `celeriac-demo <command> --help` into a temporary file, which must equal the committed page.
# 5. Module map. The ```mermaid block in CONTRIBUTING.md has exactly the edges `A --> B` of Package.swift's
#    .target / .executableTarget / .systemLibrary declarations and their string dependencies.
# 6. README shape: at most 420 lines, and no heading with a date, "session N" or "round N" in it.
# 7. .swift-format: valid JSON, and every rule it turns off has a row with its reason in
#    docs/contributing-style.md; `swift format lint --strict` on Package.swift, Sources and Tests finds nothing.
# 8. API documentation: scripts/docs/docc.sh builds the DocC archive of the library modules (their doc comments
#    and the catalogs' articles) with --warnings-as-errors: a broken symbol link or an undocumented parameter fails.
#
# The broker: if the private broker (scripts/broker.sh) is not running, this script starts it and stops it on
# exit; a broker it did not start is left running. It exits 1 when any check fails, and each failure says what
# to fix.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

offline=0
for a in "$@"; do
    case "$a" in
        --offline) offline=1 ;;
        -h|--help) sed -n '2,50p' "$0" | sed -n '/^# /,/^set -euo/p' | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "check-docs.sh: unknown argument '$a' (see --help)" >&2; exit 2 ;;
    esac
done

export CELERIAC_DEMO=${CELERIAC_DEMO:-.build/debug/celeriac-demo}
[[ "$CELERIAC_DEMO" == /* ]] || CELERIAC_DEMO="$REPO/$CELERIAC_DEMO"
status=0
started=$SECONDS

# --- 4. the configuration reference (needs only the binary)
if [[ -x "$CELERIAC_DEMO" ]]; then
    generated=$(mktemp)
    trap 'rm -f "$generated"' EXIT
    if scripts/docs/gen-config-reference.sh > "$generated"; then
        if ! diff -u docs/configuration.md "$generated" > "$generated.diff"; then
            echo "check-docs: FAIL docs/configuration.md differs from the commands' --help output:" >&2
            sed 's/^/    /' "$generated.diff" | head -60 >&2
            echo "check-docs: regenerate it: scripts/docs/gen-config-reference.sh > docs/configuration.md" >&2
            status=1
        else
            echo "check-docs: configuration: docs/configuration.md matches the --help of $(basename "$CELERIAC_DEMO")" >&2
        fi
        rm -f "$generated.diff"
    else
        echo "check-docs: FAIL scripts/docs/gen-config-reference.sh failed (see above)" >&2
        status=1
    fi
else
    echo "check-docs: FAIL $CELERIAC_DEMO is missing: build it (swift build --product celeriac-demo) or set CELERIAC_DEMO" >&2
    status=1
    offline=1
fi

# --- 1, 3, 5, 6, 7: files only
python3 scripts/docs/check_docs.py --only links,readme,examples,module-map,swift-format || status=1

# --- 8: DocC, with warnings as errors
scripts/docs/docc.sh --check || status=1

# --- 2: README commands, against the private broker
if (( offline )); then
    python3 scripts/docs/check_docs.py --only commands --offline || status=1
else
    BROKER="$REPO/scripts/broker.sh"
    started_broker=0
    "$BROKER" status >/dev/null 2>&1 || started_broker=1
    stop_broker() {
        if (( started_broker )); then "$BROKER" stop >/dev/null || true; fi
        rm -f "${generated:-}"
    }
    trap stop_broker EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    eval "$("$BROKER" start)"
    export CELERIAC_BROKER_URL="$CELERIAC_TEST_BROKER_URL"
    python3 scripts/docs/check_docs.py --only commands || status=1
fi

if (( status == 0 )); then
    echo "check-docs: all documentation checks passed in $((SECONDS - started)) s" >&2
else
    echo "check-docs: FAILED: fix the lines marked FAIL above (run scripts/check-docs.sh --offline to skip the commands)" >&2
fi
exit "$status"
