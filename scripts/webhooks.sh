#!/usr/bin/env bash
# Webhooks against the real server (scripts/webhooks.py): signatures verified by the PyPI
# `standardwebhooks` package (an implementation independent of ours), and the crash test —
# SIGKILL under writes while the receiver is down, then every acknowledged change delivered at
# least once and none delivered whose change did not commit. The venv lives under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/webhooks-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet standardwebhooks
cargo build --locked -q -p bespin-http --bin bespin
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" scripts/webhooks.py target/debug/bespin "$work"
