#!/usr/bin/env bash
# Usage in and out against the real server (scripts/export_usage.py): events made by the PyPI
# `cloudevents` SDK are ingested, and `bespin export-usage` pushes the export to a local receiver
# that parses every event with the same SDK — through receiver failures (backoff), a SIGTERM
# and a resume from the state file, in the OpenMeter and Lago formats. The venv lives under
# target/.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/export-usage-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet "cloudevents==2.2.0"
cargo build --locked -q -p bespin-http --bin bespin
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" scripts/export_usage.py target/debug/bespin "$work"
