#!/usr/bin/env bash
# Writes docs/configuration.md to stdout, generated from the commands' own --help output, so that the reference
# cannot drift from the flags: scripts/check-docs.sh regenerates it and diffs it against the committed page.
#
# Usage: scripts/docs/gen-config-reference.sh > docs/configuration.md
# Binary: $CELERIAC_DEMO, default .build/debug/celeriac-demo (relative to the repository root).
# The hand-written parts (broker URL format, script settings, Swift-only settings) are in
# scripts/docs/configuration-head.md and scripts/docs/configuration-tail.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$REPO"
BIN=${CELERIAC_DEMO:-.build/debug/celeriac-demo}
if [[ ! -x "$BIN" ]]; then
    echo "gen-config-reference.sh: error: $BIN is missing or not executable; build it (swift build --product celeriac-demo) or set CELERIAC_DEMO" >&2
    exit 2
fi

# Fixed width and no colours: the output must not depend on the terminal.
export COLUMNS=100 LINES=50 NO_COLOR=1
unset CELERIAC_BROKER_URL CELERIAC_METRICS_PORT CELERIAC_QUEUE_TYPE CELERIAC_SIGNING_KEYS_FILE

help_of() {   # help_of SUBCOMMAND...: the help text, with the executable's name as `celeriac-demo`
    "$BIN" "$@" --help 2>&1 | sed -e 's/[[:space:]]*$//'
}

# Subcommands listed under SUBCOMMANDS: in a help text.
subcommands_of() {
    awk '/^SUBCOMMANDS:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^[A-Z]/ { on = 0 }'
}

commands=()
while read -r c; do
    nested=$(help_of "$c" | subcommands_of || true)
    if [[ -n "$nested" ]]; then
        while read -r n; do commands+=("$c $n"); done <<< "$nested"
    else
        commands+=("$c")
    fi
done < <(help_of | subcommands_of)
(( ${#commands[@]} > 0 )) || { echo "gen-config-reference.sh: error: no subcommands found in '$BIN --help'" >&2; exit 1; }

cat scripts/docs/configuration-head.md

echo
echo "## Commands"
echo
for c in "${commands[@]}"; do
    anchor=${c// /-}
    # The overview may wrap: join its lines up to the first blank line.
    overview=$(help_of $c | awk '/^OVERVIEW:/ { on = 1; sub(/^OVERVIEW: */, "") } on && /^$/ { on = 0 } on { printf "%s%s", sep, $0; sep = " " }')
    echo "- [\`$c\`](#$anchor): $overview"
done

echo
echo "## Environment variables"
echo
echo "Read by the commands (a flag given on the command line wins over its variable):"
echo
echo "| variable | commands |"
echo "|---|---|"
{
    for c in "${commands[@]}"; do
        # Joined lines, so a variable named at a line break is still found.
        help_of $c | tr '\n' ' ' | tr -s ' ' | grep -o 'env CELERIAC_[A-Z_]*' | sed 's/^env //' | sort -u | sed "s/\$/ $c/" || true
    done
} | sort -k1,1 -s | awk '
    { v = $1; $1 = ""; sub(/^ /, ""); if (v != last) { if (last != "") print "| `" last "` | " list " |"; list = "`" $0 "`"; last = v } else list = list ", `" $0 "`" }
    END { if (last != "") print "| `" last "` | " list " |" }'

for c in "${commands[@]}"; do
    echo
    echo "## $c"
    echo
    echo '```text'
    help_of $c
    echo '```'
done

echo
cat scripts/docs/configuration-tail.md
