#!/usr/bin/env bash
# The whole test suite: the Rust workspace (with the crash test, the races and the contract's
# order-of-checks and state tables), the Python package (built into target/py-venv),
# schemathesis against a running server (venv under target/, from PyPI), the official MCP
# Python SDK and MCP Inspector CLI against /mcp (PyPI and npm, under target/), the README's quick
# start run as written, the operator's tools (metrics through promtool and an OpenMetrics parser,
# an SDK generated from /openapi.json, hadolint, systemd-analyze), an audit proof checked by a
# verifier of our own in Python over PyPI `cryptography`, then the browser test of /ui,
# /app and /console in headless Chromium. Each script installs what it needs when missing.
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
bespin-http/browser-test/run.sh
