#!/usr/bin/env bash
# Hostile input: schemathesis (from PyPI) fuzzes every operation of /openapi.json on a running
# `bespin` with a bounded number of examples per operation (valid and invalid inputs), as an
# authenticated tenant admin and with the platform-admin key, and fails on any 5xx.
#   SCHEMATHESIS_MAX_EXAMPLES  examples per operation (default 20)
# Installs what it needs itself (a venv under target/, pip); needs python3 >= 3.9 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
MAX="${SCHEMATHESIS_MAX_EXAMPLES:-20}"
VENV=target/schemathesis-venv
if [ ! -x "$VENV/bin/schemathesis" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi
cargo build --locked -p bespin-http --bin bespin
WORK="$(mktemp -d)"
ADMIN_KEY="schemathesis-admin-key"
# The tarpit of failed authentications is off: fuzzing sends wrong credentials on purpose from
# one address, and held failures would make the run take an hour. Three operations are not
# fuzzed: two end the run's own credentials (every later case would be a 401) — the tenant
# key's rotation (grace 0 ends the key at once) and the tenant's erasure — and the event stream
# never ends by itself, so each of its cases would wait out the client's 30 s timeout (its
# query is the event list's, which is fuzzed; tests/events.rs covers the stream).
start_server "$WORK" PLATFORM_ADMIN_KEY="$ADMIN_KEY" RATE_LIMIT_DISABLED=1 RUST_LOG=error \
    BESPIN_AUTH_TARPIT_AFTER=off
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
# A tenant whose admin credentials every generated request carries.
read -r TENANT USER KEY < <(create_tenant "$BASE" Fuzz)
START=$(date +%s)
"$VENV/bin/schemathesis" run "$BASE/openapi.json" \
    --checks not_a_server_error \
    --max-examples "$MAX" \
    --seed 9 \
    --generation-database none \
    --workers 2 \
    --request-timeout 30 \
    --suppress-health-check all \
    --exclude-operation-id rotate_tenant_key \
    --exclude-operation-id admin_erase_tenant \
    --exclude-operation-id stream_events \
    -H "X-Tenant-ID: $TENANT" -H "X-User-ID: $USER" -H "X-API-Key: $KEY" \
    -H "X-Platform-Admin-Key: $ADMIN_KEY" \
    2>&1 | tee "$WORK/st.out"
CASES="$(grep -Eo '[0-9]+ generated, [0-9]+ passed' "$WORK/st.out" | tail -n1 || true)"
# The server must still be up and its database consistent.
curl -fsS "$BASE/healthz" >/dev/null
CHECK="$(target/debug/bespin check --db "$WORK/db.redb")"
echo "$CHECK" | grep -m1 '^bespin check'
echo "schemathesis: ${CASES:-?} test cases, at most $MAX examples per operation, zero 5xx, $(( $(date +%s) - START )) s"
