#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed when missing):
#
#   bash scripts/package.sh            # → target/debian/switchboard_<version>-1_<arch>.deb
#   bash scripts/package.sh --deb-revision 2   # extra arguments go to `cargo deb`
#
# What goes in it is [package.metadata.deb] in Cargo.toml: /usr/bin/switchboard,
# /lib/systemd/system/switchboard.service, /etc/switchboard/switchboard.toml
# (a conffile) and the docs; maintainer scripts are in deploy/debian/. The
# unit is checked (deploy/check-unit.sh) against the binary being packaged.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[package.sh] %s\n' "$*" >&2; }

if ! cargo deb --version >/dev/null 2>&1; then
    log "installing cargo-deb"
    cargo install cargo-deb --locked
fi
command -v dpkg-deb >/dev/null || { log "dpkg-deb is needed (Debian/Ubuntu)"; exit 1; }

log "cargo build --release"
cargo build --release --locked --bin switchboard
bash deploy/check-unit.sh "${CARGO_TARGET_DIR:-target}/release/switchboard"

log "cargo deb"
deb=$(cargo deb --no-build --locked "$@" | tail -n 1)
log "built $deb"
dpkg-deb --info "$deb" >&2
dpkg-deb --contents "$deb" >&2
printf '%s\n' "$deb"
