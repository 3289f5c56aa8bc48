#!/usr/bin/env bash
# The whole test suite: the Rust workspace (with the crash test, the races and the contract's
# order-of-checks and state tables), the Python package (built into target/py-venv),
# schemathesis against a running server (venv under target/, from PyPI), the official MCP
# Python SDK and MCP Inspector CLI against /mcp (PyPI and npm, under target/), the README's quick
# start run as written, the operator's tools (metrics through promtool and an OpenMetrics parser,
# an SDK generated from /openapi.json, hadolint, systemd-analyze), an audit proof checked by a
# verifier of our own in Python over PyPI `cryptography`, then the browser test of /ui,
# /app and /console in headless Chromium; webhooks checked by the PyPI standardwebhooks package
# with the crash test of their delivery (scripts/webhooks.sh). Each script installs what it needs
# when missing.
#
# Then the same storage-touching suites again on PostgreSQL (issue 19): scripts/pg.sh installs
# Debian's postgresql when missing and starts a throw-away cluster (fsync off: these runs test
# behaviour, not durability), BESPIN_TEST_DB names it, and every test that opens a database
# through the test helpers (Bespin::open_for_test, TestServer, store/tests.rs, the Python
# fixture) takes a schema of its own there: the core's unit and integration tests, the HTTP
# suites, the shared-database tests (two servers, a killed server, PostgreSQL restarted), and
# the Python suite. What stays on redb alone: tests of the redb file itself (crash of the file,
# layouts of old files, backup files, the quick start), the browser and tooling scripts.
# Last, scripts/pg-matrix.sh runs the backend contract, the core's unit tests and the
# two-server tests on PostgreSQL 10, 11, 12, 13, 14, 16, 17 and 18 (builds from the npm
# registry; about four minutes).
# This is the README's test command and exactly what .ci/run runs.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace --locked
bespin-py/run-tests.sh
scripts/schemathesis.sh
scripts/mcp-clients.sh
scripts/readme-quickstart.sh
scripts/operator-tools.sh
scripts/audit-verify.sh
scripts/webhooks.sh
scripts/export-usage.sh
bespin-http/browser-test/run.sh

eval "$(PG_FSYNC=off scripts/pg.sh start)"
trap 'scripts/pg.sh stop "$PGDATA_DIR"' EXIT
export BESPIN_TEST_DB="$BESPIN_TEST_PG_URL"
cargo test --locked -p bespin-core -p bespin-http
BESPIN_PY_SKIP_MYPY=1 bespin-py/run-tests.sh
scripts/pg-matrix.sh
