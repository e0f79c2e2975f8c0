#!/usr/bin/env bash
# Runs the whole test suite: unit, property, store conformance (SQLite and
# PostgreSQL) and end-to-end tests, then the web page's browser tests
# (tests/e2e, headless Chromium driving the binary `cargo test` built; see
# README "The web page's browser tests"), then checks the systemd unit (deploy/check-unit.sh).
# Installs and starts what the tests need when it is missing, so it works on
# a fresh machine (run as root there).
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh store_     # only Rust tests whose name matches (no browser tests)
#
# PostgreSQL: the tests use postgres://postgres@127.0.0.1:5432/test (trust
# auth) unless SWITCHBOARD_TEST_PG_URL says otherwise. They fail, never
# skip, when it is unreachable.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root to run: $*"; return 1; fi
}

apt_updated=0
apt_install() {
    if [ $apt_updated = 0 ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_postgres() {
    if [ -n "${SWITCHBOARD_TEST_PG_URL:-}" ]; then
        return 0
    fi
    if ! command -v pg_isready >/dev/null; then
        log "installing postgresql-client"
        apt_install postgresql-client
    fi
    if pg_isready -q -h 127.0.0.1 -p 5432; then
        return 0
    fi
    log "PostgreSQL is not answering on 127.0.0.1:5432; trying to start it"
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        log "installing postgresql"
        apt_install postgresql
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 1
    done
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        log "PostgreSQL did not come up; the PostgreSQL tests will fail"
        return 0
    fi
    # A fresh cluster: trust auth for local TCP and a `test` database.
    if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
        as_root su postgres -c "psql -qc 'CREATE DATABASE test'" >/dev/null 2>&1 || true
    fi
}

ensure_smtp_sink() {
    # The tests' SMTP server is Python's aiosmtpd (tests/support/smtp_sink.py);
    # /metrics is checked with the Prometheus project's own Python parser
    # (tests/support/prom_parse.py).
    local module package
    for module in aiosmtpd:aiosmtpd prometheus_client:prometheus_client; do
        package=${module#*:}
        module=${module%%:*}
        if ! python3 -c "import $module" >/dev/null 2>&1; then
            log "installing $package (for the tests)"
            python3 -m pip install -q "$package" >/dev/null 2>&1 || python3 -m pip install -q --break-system-packages "$package"
        fi
    done
}

# The browser tests: Debian's Chromium (Playwright's own browser download
# needs the network and a supported distribution; the Python package drives
# any recent Chromium) and the Python packages playwright and pytest.
ensure_browser_tests() {
    if ! command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null 2>&1; then
        log "installing chromium (for the browser tests)"
        apt_install chromium
    fi
    local package
    for package in playwright pytest; do
        if ! python3 -c "import $package" >/dev/null 2>&1; then
            log "installing $package (for the browser tests)"
            python3 -m pip install -q "$package" >/dev/null 2>&1 || python3 -m pip install -q --break-system-packages "$package"
        fi
    done
}

# systemd-analyze checks the unit in deploy/; it needs no running systemd.
ensure_systemd_analyze() {
    if ! command -v systemd-analyze >/dev/null; then
        log "installing systemd (for systemd-analyze)"
        apt_install systemd
    fi
}

ensure_postgres
ensure_smtp_sink
ensure_systemd_analyze
if [ $# = 0 ]; then
    ensure_browser_tests
fi
# The IMAP tests start private Dovecot instances (scripts/dovecot.sh).
log "dovecot: $(bash scripts/dovecot.sh install 2>&1 | tail -n 1)"

log "cargo test"
cargo test --all-targets --locked -- "$@"

if [ $# = 0 ]; then
    # The binary `cargo test` just built; it honours CARGO_TARGET_DIR.
    target=${CARGO_TARGET_DIR:-target}
    case $target in /*) ;; *) target="$PWD/$target" ;; esac
    log "browser tests (tests/e2e, headless Chromium)"
    SWITCHBOARD_BIN="$target/debug/switchboard" PYTHONDONTWRITEBYTECODE=1 \
        python3 -m pytest tests/e2e -q
fi

log "deploy/check-unit.sh"
bash deploy/check-unit.sh
