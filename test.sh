#!/usr/bin/env bash
# The whole test suite: the Rust workspace (with the crash test and the races), the Python
# package (built into target/py-venv), schemathesis against a running server (venv under
# target/, from PyPI), then the browser test of /ui, /app and /console in headless Chromium
# (installs its Debian packages).
# This is the README's test command and exactly what .ci/run runs.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace --locked
bespin-py/run-tests.sh
scripts/schemathesis.sh
bespin-http/browser-test/run.sh
