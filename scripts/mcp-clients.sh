#!/usr/bin/env bash
# MCP against real clients nobody here wrote: the official Python SDK (`mcp` 2.x from PyPI, in
# a venv under target/) runs scripts/mcp/test_sdk.py with pytest against a running `bespin`:
# in its `auto` mode (server/discover, 2026-07-28) and held to the handshake revision
# (initialize, Mcp-Session-Id), it lists tools, calls kpi_summary and create_task, reads
# resources and a prompt, sees a capability error as a tool error, and follows a task through
# subscriptions/listen. Then the official MCP Inspector CLI (npm)
# lists the tools and calls one, headless, when npm is present.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
VENV=target/mcp-venv
if [ ! -x "$VENV/bin/pytest" ] || ! "$VENV/bin/python" -c 'import mcp' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "mcp==2.3.0" "pytest==8.4.2"
fi
cargo build --locked -p bespin-http --bin bespin
WORK="$(mktemp -d)"
ADMIN_KEY="mcp-test-admin-key"
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
start_server "$WORK" PLATFORM_ADMIN_KEY="$ADMIN_KEY" RATE_LIMIT_DISABLED=1 RUST_LOG=error
export BESPIN_BASE="$BASE" BESPIN_ADMIN_KEY="$ADMIN_KEY"
"$VENV/bin/pytest" -q -p no:cacheprovider scripts/mcp/test_sdk.py
if command -v npm >/dev/null 2>&1; then
    scripts/mcp/inspector.sh "$BASE"
else
    echo "mcp-clients: npm not found: the MCP Inspector CLI was NOT run"
fi
