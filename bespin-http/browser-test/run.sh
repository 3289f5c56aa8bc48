#!/usr/bin/env bash
# The browser test: the real `bespin` server with a fresh database, driven in headless Chromium
# through chromedriver with Selenium (Debian packages `chromium`, `chromium-driver`,
# `python3-selenium`; run with the system /usr/bin/python3 so pyenv/venvs do not matter).
#
#   bespin-http/browser-test/run.sh      # what ./test.sh and .ci/run call
#
# Installs the packages only when one is missing (idempotent, fast when installed). Screenshots
# go to target/screenshots/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py=/usr/bin/python3

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
{ [ -x "$py" ] && "$py" -c 'import selenium' >/dev/null 2>&1; } || need+=(python3 python3-selenium)
. "$root/scripts/lib.sh"
install_missing "${need[@]}"

cd "$root"
cargo build --locked -q -p bespin-http --bin bespin
exec "$py" "$here/test_pages.py" --server "$root/target/debug/bespin" --screenshots "$root/target/screenshots"
