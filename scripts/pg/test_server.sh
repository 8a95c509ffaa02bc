#!/usr/bin/env bash
# A private PostgreSQL 15 server for the PostgreSQL store's tests and CI (issue 13):
#
#   scripts/pg/test_server.sh start   # installs Debian's postgresql-15 if missing, starts, prints the URL
#   scripts/pg/test_server.sh url     # prints the URL (export REWARD_TEST_POSTGRES_URL="$(... url)")
#   scripts/pg/test_server.sh running # exits 0 when it is up (scripts that start it stop it only then)
#   scripts/pg/test_server.sh stop    # stops the server and removes its data
#
# The server is the project's own, never the machine's cluster: its data directory, socket
# directory and log live under /tmp/reward-pg-test-PORT/, it listens on 127.0.0.1 on its own port
# (PG_TEST_PORT, default 54329) and on that socket, with fsync on (the store's durability is
# what the tests are about). postgres refuses to run as root, so as root it runs as the
# `postgres` user the package creates. `start` is idempotent: a server already up is kept.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=/usr/lib/postgresql/15/bin
PORT="${PG_TEST_PORT:-54329}"
# Outside the checkout: the server runs as `postgres`, which must reach its directories, and a
# checkout may sit under a directory only root can enter (/root is 0700). PG_TEST_ROOT moves it.
ROOT="${PG_TEST_ROOT:-/tmp/reward-pg-test-$PORT}"
DATA="$ROOT/data"
SOCKETS="$ROOT/sockets"
LOG="$ROOT/server.log"
DATABASE=reward_test
# How long start and stop wait for the server, in seconds: initdb and a start take a second or
# two here; 60 s leaves room for a loaded 2-core CI machine without hanging a run forever.
WAIT_SECS=60

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_server() {
    [ -x "$BIN/postgres" ] && return 0
    echo "installing Debian's postgresql-15" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-client-15 >/dev/null
}

url() {
    echo "postgresql://reward@127.0.0.1:$PORT/$DATABASE"
}

running() {
    "$BIN/pg_isready" -q -h "$SOCKETS" -p "$PORT" -U reward -d postgres -t 1
}

start() {
    install_server
    if [ -f "$DATA/postmaster.pid" ] && running; then
        url
        return 0
    fi
    mkdir -p "$ROOT"
    if [ "$(id -u)" = 0 ]; then chown postgres "$ROOT"; fi
    if [ ! -f "$DATA/PG_VERSION" ]; then
        rm -rf "$DATA"
        # trust on loopback and the private socket only: the server is this checkout's, for tests.
        as_owner "$BIN/initdb" -D "$DATA" -U reward --auth=trust --encoding=UTF8 --no-locale >/dev/null
    fi
    as_owner mkdir -p "$SOCKETS"
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t "$WAIT_SECS" \
        -o "-p $PORT -k $SOCKETS -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=200" start >/dev/null
    local waited=0
    until running; do
        waited=$((waited + 1))
        if [ "$waited" -ge "$WAIT_SECS" ]; then
            echo "PostgreSQL did not answer on port $PORT within ${WAIT_SECS}s; see $LOG" >&2
            exit 1
        fi
        sleep 1
    done
    if ! as_owner "$BIN/psql" -q -h "$SOCKETS" -p "$PORT" -U reward -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'" | grep -q 1; then
        as_owner "$BIN/psql" -q -h "$SOCKETS" -p "$PORT" -U reward -d postgres -c "CREATE DATABASE $DATABASE" >/dev/null
    fi
    url
}

stop() {
    if [ -f "$DATA/postmaster.pid" ]; then
        as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w -t "$WAIT_SECS" stop >/dev/null || true
    fi
    rm -rf "$ROOT"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    url) url ;;
    running) [ -x "$BIN/pg_isready" ] && [ -f "$DATA/postmaster.pid" ] && running ;;
    *)
        echo "usage: $0 start|stop|url|running" >&2
        exit 2
        ;;
esac
