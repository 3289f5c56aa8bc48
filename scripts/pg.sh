#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests (draft for issue 19).
#   eval "$(scripts/pg.sh start)"   # exports BESPIN_TEST_PG_URL, PGDATA_DIR, PG_PORT
#   scripts/pg.sh stop "$PGDATA_DIR"
set -euo pipefail
cmd="${1:-start}"
need_pkg() {
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        echo "pg.sh: installing postgresql" >&2
        $sudo apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    fi
}
bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$cmd" in
start)
    need_pkg
    b="$(bin)"
    dir="$(mktemp -d /tmp/bespin-pg.XXXXXX)"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    as_pg "$b/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
    as_pg "$b/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
    as_pg "$b/createdb" -h 127.0.0.1 -p "$port" -U postgres bespin_test
    echo "export BESPIN_TEST_PG_URL=postgres://postgres@127.0.0.1:$port/bespin_test PGDATA_DIR=$dir PG_PORT=$port"
    ;;
stop)
    dir="${2:?data dir}"
    as_pg "$(bin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
esac
