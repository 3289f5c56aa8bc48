#!/usr/bin/env bash
# Page weight and time to first chart of /app's KPIs view for a tenant with 50 KPIs × 1,000
# points, in headless Chromium (the browser test's Debian packages: chromium, chromium-driver,
# python3-selenium), against the release server with a fresh database.
#
#   benches/pages/run.sh [RUNS]        # default 5 cold loads; figures in README "Performance"
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
cargo build --release --locked -q -p bespin-http --bin bespin
exec /usr/bin/python3 "$here/page_bench.py" --server "$root/target/release/bespin" --runs "${1:-5}"
