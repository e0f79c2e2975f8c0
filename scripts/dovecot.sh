#!/usr/bin/env bash
# A private Dovecot IMAP server on loopback, for the IMAP tests and benchmarks.
#
#   scripts/dovecot.sh install                      install dovecot-imapd if missing (root)
#   scripts/dovecot.sh start DIR [IMAP_PORT IMAPS_PORT]
#                                                    start an instance whose files all live in DIR;
#                                                    prints `imap_port=N` and `imaps_port=M`
#   scripts/dovecot.sh user DIR NAME PASSWORD       add (or replace) a mail user
#   scripts/dovecot.sh stop DIR                     stop that instance (idempotent)
#   scripts/dovecot.sh restart DIR                  stop, then start on the same ports
#   scripts/dovecot.sh certs DIR                    only make the test CA and server certificate
#                                                    in DIR (other TLS servers of the tests use them)
#
# Settings in DIR/local.conf, if present, are included last (tests use it to
# take capabilities such as MOVE or IDLE away).
# Why it is shaped so:
# * The tests need a real IMAP server (IDLE keepalives, UID FETCH n:*,
#   MOVE, UIDVALIDITY) and Dovecot from Debian's packages is the common one.
#   It runs from a config file of our own (`dovecot -c DIR/dovecot.conf`),
#   never the system's, and never through systemd: every test gets its own
#   instance, its own ports and its own directory, so tests run in parallel.
# * Dovecot's master runs as root (it has to setuid its children); its
#   internal processes run as `default_internal_user` (dovecot) and the login
#   processes as `default_login_user` (dovenull), both created by the Debian
#   package. Mail is owned by `nobody`: Dovecot refuses uid 0 for mail and we
#   do not want to add a system user. DIR is made world-traversable (0755)
#   because those unprivileged processes must reach the sockets under
#   DIR/run and the Maildirs under DIR/mail; a fresh temp dir is 0700.
# * TLS uses a throw-away CA made here with openssl (DIR/ca.pem) and a
#   server certificate it signs for `localhost` and 127.0.0.1. Certificates
#   already in DIR are kept: the tests put a lone `openssl req -x509` one
#   there (CA:TRUE, which webpki alone refuses as a server's own) to check
#   that pinning it through ca_file works.
# * Plain port: LOGIN allowed without TLS, STARTTLS offered. Implicit-TLS
#   port: TLS from the first byte. IDLE is on (Dovecot always offers it);
#   `imap_idle_notify_interval` is short so clients meet the `* OK Still here`
#   keepalives that defeat an inactivity timeout.
# * `auth_failure_delay = 0`: Dovecot's own 2 s delay on a failed login would
#   hide a client that retries in a tight loop; the tests want to see that.
#
# It fails loudly (non-zero exit, the reason and Dovecot's log on stderr) and
# never skips: a test suite that cannot start its IMAP server must fail.
set -euo pipefail

die() {
    echo "dovecot.sh: $*" >&2
    exit 1
}

need_dir() {
    [ -n "${1:-}" ] || die "missing DIR argument"
    mkdir -p "$1"
    (cd "$1" && pwd)
}

install_dovecot() {
    if command -v dovecot >/dev/null 2>&1 && [ -x /usr/lib/dovecot/imap ]; then
        return 0
    fi
    [ "$(id -u)" = 0 ] || die "dovecot-imapd is not installed and installing it needs root: apt-get install -y dovecot-imapd"
    echo "dovecot.sh: installing dovecot-imapd from Debian's packages" >&2
    # The package would start a system-wide Dovecot on ports 143/993 where a
    # service manager exists; a policy-rc.d that answers 101 stops that.
    # Most container images ship one already; only then do we leave it be.
    local own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local rc=0
    {
        apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                dovecot-imapd openssl
    } >&2 || rc=$?
    [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
    [ "$rc" = 0 ] || die "apt-get install dovecot-imapd failed (exit $rc)"
    command -v dovecot >/dev/null 2>&1 || die "dovecot is still not on PATH after installing dovecot-imapd"
}

check_version() {
    local v
    v="$(dovecot --version 2>/dev/null || true)"
    case "$v" in
    2.3.*) ;;
    *) die "this harness writes a Dovecot 2.3 configuration; found dovecot version '${v:-none}'" ;;
    esac
    getent passwd dovecot >/dev/null || die "system user 'dovecot' is missing (the dovecot-core package creates it)"
    getent passwd dovenull >/dev/null || die "system user 'dovenull' is missing (the dovecot-core package creates it)"
}

# A port nobody listens on, by trying random ones in 20000–59999.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "found no free port"
}

make_certs() {
    local d="$1"
    [ -s "$d/ca.pem" ] && [ -s "$d/server.pem" ] && [ -s "$d/server.key" ] && return 0
    command -v openssl >/dev/null 2>&1 || die "openssl is missing"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
        -keyout "$d/ca.key" -out "$d/ca.pem" -subj "/CN=Switchboard test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 ||
        die "openssl could not make the test CA"
    openssl req -newkey rsa:2048 -nodes -keyout "$d/server.key" -out "$d/server.csr" \
        -subj "/CN=localhost" >/dev/null 2>&1 || die "openssl could not make the server key"
    printf '%s\n' \
        "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" \
        "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$d/server.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -CAcreateserial -days 3650 -extfile "$d/server.ext" -out "$d/server.pem" >/dev/null 2>&1 ||
        die "openssl could not sign the server certificate"
    chmod 600 "$d/ca.key" "$d/server.key"
}

write_config() {
    local d="$1" imap_port="$2" imaps_port="$3"
    local dh=""
    [ -s /usr/share/dovecot/dh.pem ] && dh="ssl_dh = </usr/share/dovecot/dh.pem"
    cat >"$d/dovecot.conf" <<EOF
# Written by scripts/dovecot.sh for a private test instance; not the system's.
instance_name = switchboard-$(basename "$d")
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = dovecot
default_login_user = dovenull

ssl = yes
ssl_cert = <$d/server.pem
ssl_key = <$d/server.key
ssl_min_protocol = TLSv1.2
$dh

disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_cache_size = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $d/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$d/mail/%u
}
mail_location = maildir:~/Maildir
mail_fsync = never
first_valid_uid = 1
imap_idle_notify_interval = 1 secs

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $imaps_port
    ssl = yes
  }
}

# Per-test additions (e.g. an imap_capability without MOVE), if any.
!include_try $d/local.conf
EOF
}

# Plain port: until the IMAP greeting is read; TLS port (third argument
# "tls"): until it accepts a connection.
wait_ready() {
    local d="$1" port="$2" kind="${3:-plain}"
    for _ in $(seq 1 100); do
        if [ "$kind" = tls ]; then
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                return 0
            fi
        elif (exec 3<>"/dev/tcp/127.0.0.1/$port" && timeout 1 head -c 4 <&3 | grep -q '^\* OK') 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "--- $d/dovecot.log ---" >&2
    tail -n 30 "$d/dovecot.log" >&2 || true
    die "dovecot did not answer on 127.0.0.1:$port within 10 s"
}

running_pid() {
    local pidfile="$1/run/master.pid" pid
    [ -s "$pidfile" ] || return 1
    pid="$(cat "$pidfile")"
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

start() {
    local d
    d="$(need_dir "${1:-}")"
    install_dovecot
    check_version
    if running_pid "$d" >/dev/null; then
        die "an instance is already running in $d (scripts/dovecot.sh stop $d)"
    fi
    local imap_port="${2:-}" imaps_port="${3:-}"
    if [ -z "$imap_port" ] && [ -s "$d/ports" ]; then
        # shellcheck disable=SC1091
        . "$d/ports"
    fi
    [ -n "$imap_port" ] || imap_port="$(free_port)"
    [ -n "$imaps_port" ] || imaps_port="$(free_port)"
    [ "$imap_port" != "$imaps_port" ] || die "the two ports must differ"

    chmod 755 "$d"
    mkdir -p "$d/run" "$d/state" "$d/mail"
    chown nobody:nogroup "$d/mail"
    touch "$d/users" "$d/dovecot.log"
    chmod 644 "$d/users"
    make_certs "$d"
    write_config "$d" "$imap_port" "$imaps_port"
    printf 'imap_port=%s\nimaps_port=%s\n' "$imap_port" "$imaps_port" >"$d/ports"

    dovecot -c "$d/dovecot.conf" -n >/dev/null 2>"$d/config-check.log" || {
        cat "$d/config-check.log" >&2
        die "dovecot rejected $d/dovecot.conf"
    }
    if ! dovecot -c "$d/dovecot.conf" 2>"$d/start.log"; then
        cat "$d/start.log" >&2
        tail -n 30 "$d/dovecot.log" >&2 || true
        die "dovecot failed to start"
    fi
    wait_ready "$d" "$imap_port"
    wait_ready "$d" "$imaps_port" tls
    echo "imap_port=$imap_port"
    echo "imaps_port=$imaps_port"
}

stop() {
    local d pid
    d="$(need_dir "${1:-}")"
    pid="$(running_pid "$d")" || return 0
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    die "dovecot (pid $pid) did not stop within 5 s; killed"
}

add_user() {
    local d="$1" name="${2:-}" password="${3:-}"
    [ -n "$name" ] || die "usage: dovecot.sh user DIR NAME PASSWORD"
    case "$name$password" in
    *:* | *$'\n'*) die "user names and passwords must not contain ':' or newlines" ;;
    esac
    d="$(need_dir "$d")"
    touch "$d/users"
    grep -v "^$name:" "$d/users" >"$d/users.new" || true
    printf '%s:{PLAIN}%s\n' "$name" "$password" >>"$d/users.new"
    chmod 644 "$d/users.new"
    mv "$d/users.new" "$d/users"
}

cmd="${1:-}"
shift || true
case "$cmd" in
install) install_dovecot && check_version ;;
start) start "$@" ;;
stop) stop "$@" ;;
restart)
    stop "${1:-}"
    start "${1:-}"
    ;;
user) add_user "$@" ;;
certs) make_certs "$(need_dir "${1:-}")" ;;
*)
    sed -n '2,16p' "$0" >&2
    exit 2
    ;;
esac
