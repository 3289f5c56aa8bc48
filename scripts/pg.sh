#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests and the load figures (issue 19).
#
#   eval "$(scripts/pg.sh start)"      # exports BESPIN_TEST_PG_URL, PGDATA_DIR, PG_PORT
#   scripts/pg.sh stop "$PGDATA_DIR"    # stops it and removes the directory
#   scripts/pg.sh halt "$PGDATA_DIR"    # stops the server, keeps the data (a restart test)
#   scripts/pg.sh crash "$PGDATA_DIR"   # stops it as a crash would (immediate: no checkpoint,
#                                       # WAL replayed at the next start), keeping the data
#   scripts/pg.sh resume "$PGDATA_DIR"  # starts it again on the same port
#   scripts/pg.sh clean "$URL"          # drops the schemas the test suites and the load scripts
#                                       # made in the database of URL (t<pid>_…, py_…, ab_…, two_…):
#                                       # a long-lived cluster otherwise keeps every one
#
# Installs Debian's `postgresql` when no server is installed. `initdb` refuses to run as root,
# and CI runs as root: the server then runs as the `postgres` user (via runuser), in a
# temporary directory, on a free port of 127.0.0.1, with trust authentication. PG_BIN picks
# another build's bin/ directory (the version matrix, scripts/pg-matrix.sh). PG_FSYNC=off
# trades durability for speed (the test suites; never the load figures, where a commit must
# reach the disk as on redb). A start whose port was taken meanwhile tries another (PG_TRY_PORT:
# the first port tried, to test that).
set -euo pipefail
cmd="${1:-start}"
need_pkg() {
    if [ -z "${PG_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "pg.sh: installing postgresql" >&2
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    fi
}
bin() {
    if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; else ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1; fi
}
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_start() {
    local dir="$1" port="$2"
    as_pg "$(bin)/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=${PG_FSYNC:-on} -c shared_buffers=128MB" \
        start >/dev/null
}
case "$cmd" in
start)
    need_pkg
    b="$(bin)"
    dir="$(mktemp -d /tmp/bespin-pg.XXXXXX)"
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as_pg "$b/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
    # A free port is only free until someone takes it: a test server binding port 0 between
    # our pick and PostgreSQL's bind made a start fail once (stop 35). So on a failed start,
    # pick again. PG_TRY_PORT is the first port tried (to test this with a taken one).
    port=""
    for attempt in 1 2 3 4 5; do
        try="${PG_TRY_PORT:-}"; PG_TRY_PORT=""
        [ -n "$try" ] || try="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
        if pg_start "$dir" "$try" 2>/dev/null; then port="$try"; break; fi
        echo "pg.sh: PostgreSQL did not start on port $try (attempt $attempt; log: $dir/log)" >&2
    done
    [ -n "$port" ] || { echo "pg.sh: PostgreSQL did not start; log: $dir/log" >&2; exit 1; }
    echo "$port" >"$dir/port"
    if [ -x "$b/createdb" ]; then
        as_pg "$b/createdb" -h 127.0.0.1 -p "$port" -U postgres bespin_test
    else # a build without client programs (the version matrix's): any psql will do
        psql -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'CREATE DATABASE bespin_test'
    fi
    echo "export BESPIN_TEST_PG_URL=postgres://postgres@127.0.0.1:$port/bespin_test PGDATA_DIR=$dir PG_PORT=$port"
    ;;
halt)
    dir="${2:?data dir}"
    as_pg "$(bin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
crash)
    dir="${2:?data dir}"
    as_pg "$(bin)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
    ;;
clean)
    url="${2:?postgres URL}"
    url="${url%%\?*}"
    psql -q -X -v ON_ERROR_STOP=1 "$url" -At -c "SELECT nspname FROM pg_namespace WHERE nspname ~ '^(t[0-9]+_[0-9]+_[0-9]+|py_[0-9a-f]{16}|ab_(old|new)_[0-9]+_[0-9]+|two_[0-9]+)$'" |
        while read -r schema; do
            PGOPTIONS="-c client_min_messages=warning" psql -q -X -v ON_ERROR_STOP=1 "$url" \
                -c "DROP SCHEMA \"$schema\" CASCADE" >/dev/null
            echo "dropped $schema"
        done
    ;;
resume)
    dir="${2:?data dir}"
    # The same port (the URL must not change); one that is briefly taken is retried.
    for attempt in 1 2 3; do
        pg_start "$dir" "$(cat "$dir/port")" 2>/dev/null && exit 0
        echo "pg.sh: PostgreSQL did not restart (attempt $attempt; log: $dir/log)" >&2
        sleep 1
    done
    exit 1
    ;;
stop)
    dir="${2:?data dir}"
    as_pg "$(bin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: pg.sh start | stop DIR | halt DIR | crash DIR | resume DIR | clean URL" >&2
    exit 2
    ;;
esac
