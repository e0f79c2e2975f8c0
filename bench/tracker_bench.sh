#!/usr/bin/env bash
# The Issue Tracker benchmark (issue 12), before and after, on the same rows.
#
#   bench/tracker_bench.sh BEFORE_BIN AFTER_BIN N [sqlite|postgres] [reps]
#
# BEFORE_BIN is a release build without migration 0010 (e.g. main before
# issue 12), AFTER_BIN one with it. One database is migrated by BEFORE_BIN
# and seeded with N issues and 10 N messages (bench/seed_million.py); the
# before daemon is timed (bench/tracker_queries.py); then AFTER_BIN
# migrates the same database to 0010 (its backfill is timed too) and the
# after daemon is timed on the very same rows. PostgreSQL uses the server
# at $PG_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres) and
# a database `sb_tracker_bench` it drops and creates. Everything stays on
# 127.0.0.1; each daemon is stopped before the next step.
set -euo pipefail

before=$(realpath "$1") after=$(realpath "$2") n=$3 backend=${4:-sqlite} reps=${5:-50}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/sb-tracker-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pid=

case $backend in
sqlite) url="sqlite://$work/bench.db" ;;
postgres)
    admin=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
    psql -q "$admin" -c 'DROP DATABASE IF EXISTS sb_tracker_bench' -c 'CREATE DATABASE sb_tracker_bench'
    url="${admin%/*}/sb_tracker_bench"
    ;;
*) echo "backend: sqlite or postgres" >&2; exit 2 ;;
esac

cat >"$work/sb.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
public_url = "http://127.0.0.1:$port"
[database]
url = "$url"
[attachments]
dir = "$work/files"
[logging]
level = "warn"
EOF

stop() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=; fi
}
trap 'stop; rm -rf "$work"' EXIT

serve() {
    "$1" --config "$work/sb.toml" serve >"$work/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do
        curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "daemon did not start:" >&2; cat "$work/serve.log" >&2; exit 1
}

echo "# $backend, $n issues, $((n * 10)) messages"
"$before" --config "$work/sb.toml" migrate
python3 "$here/seed_million.py" "$url" "$n"

serve "$before"
python3 "$here/tracker_queries.py" "http://127.0.0.1:$port" "$reps" before
stop

start=$(date +%s)
"$after" --config "$work/sb.toml" migrate
echo "migration 0010 on $n issues: $(($(date +%s) - start)) s"

serve "$after"
python3 "$here/tracker_queries.py" "http://127.0.0.1:$port" "$reps" after
stop
