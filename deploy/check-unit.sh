#!/usr/bin/env bash
# Checks deploy/switchboard.service the way ops will meet it:
#
#   1. `systemd-analyze verify`: the unit parses, every directive is known
#      and valid, and ExecStart is executable. verify exits 0 after
#      "…, ignoring" warnings (a misspelt value is silently dropped), so any
#      message about our unit fails the check too.
#   2. `systemd-analyze security --offline=yes`: overall exposure at most
#      2.0 (MAX_EXPOSURE), the bar SPEC §7 sets for the hardened unit.
#
#   bash deploy/check-unit.sh [PATH-TO-switchboard-BINARY]
#
# verify insists that ExecStart's binary exists, and /usr/bin/switchboard is
# only there once the package is installed, so the unit is checked as a copy
# whose ExecStart points at a built binary (default: target/debug, built if
# missing); nothing else in the copy changes. Fails, never skips, when
# systemd-analyze is missing (scripts/test.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

UNIT=deploy/switchboard.service
INSTALLED_BIN=/usr/bin/switchboard
MAX_EXPOSURE=2.0

log() { printf '[check-unit] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

command -v systemd-analyze >/dev/null ||
    die "systemd-analyze not found (apt-get install systemd)"

bin=${1:-}
if [ -z "$bin" ]; then
    bin="${CARGO_TARGET_DIR:-target}/debug/switchboard"
    if [ ! -x "$bin" ]; then
        log "building $bin"
        cargo build --quiet --bin switchboard
    fi
fi
[ -x "$bin" ] || die "$bin is not an executable"
bin=$(realpath "$bin")

grep -qx "ExecStart=$INSTALLED_BIN serve" "$UNIT" ||
    die "$UNIT: expected the line ExecStart=$INSTALLED_BIN serve (where the package installs the binary)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
copy="$work/switchboard.service"
sed "s#^ExecStart=$INSTALLED_BIN #ExecStart=$bin #" "$UNIT" >"$copy"
grep -qx "ExecStart=$bin serve" "$copy" || die "could not point ExecStart at $bin"

log "systemd-analyze verify ($(systemd-analyze --version | head -n 1))"
status=0
out=$(systemd-analyze verify "$copy" 2>&1) || status=$?
# Messages about other units on this machine are not ours to fix.
ours=$(printf '%s\n' "$out" | grep -E "switchboard\.service|$work" || true)
if [ $status -ne 0 ] || [ -n "$ours" ]; then
    printf '%s\n' "$out" >&2
    die "systemd-analyze verify rejected $UNIT"
fi

log "systemd-analyze security --offline=yes"
status=0
report=$(systemd-analyze security --offline=yes "$copy" 2>&1) || status=$?
line=$(printf '%s\n' "$report" | grep -E 'Overall exposure level for switchboard\.service' || true)
score=$(printf '%s\n' "$line" | grep -oE '[0-9]+\.[0-9]+' | head -n 1 || true)
if [ $status -ne 0 ] || [ -z "$score" ]; then
    printf '%s\n' "$report" >&2
    die "systemd-analyze security did not report an exposure level"
fi
if ! awk -v s="$score" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(s <= max) }'; then
    printf '%s\n' "$report" | grep -E '^✗' >&2 || true
    die "exposure $score is above $MAX_EXPOSURE"
fi
log "OK: verify clean, exposure $score (at most $MAX_EXPOSURE)"
