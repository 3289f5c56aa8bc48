#!/usr/bin/env bash
# The whole test suite: the Rust workspace (with the crash test, the races and the contract's
# order-of-checks and state tables), the Python package (built into target/py-venv),
# schemathesis against a running server (venv under target/, from PyPI), the README's quick
# start run as written, the operator's tools (metrics through promtool and an OpenMetrics parser,
# an SDK generated from /openapi.json, hadolint, systemd-analyze), then the browser test of /ui,
# /app and /console in headless Chromium; webhooks checked by the PyPI standardwebhooks package
# with the crash test of their delivery (scripts/webhooks.sh). Each script installs what it needs when missing.
# This is the README's test command and exactly what .ci/run runs.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace --locked
bespin-py/run-tests.sh
scripts/schemathesis.sh
scripts/readme-quickstart.sh
scripts/operator-tools.sh
scripts/webhooks.sh
bespin-http/browser-test/run.sh
