#!/usr/bin/env bash
# The whole test suite: the Rust workspace, the Python package (built into target/py-venv), then
# the browser test of /ui, /app and /console in headless Chromium (installs its Debian packages).
# This is the README's test command and exactly what .ci/run runs.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace --locked
bespin-py/run-tests.sh
bespin-http/browser-test/run.sh
