#!/usr/bin/env bash
# Runs the README's quick start as written: every `sh` block of its "Quick start" section, in
# order, in one bash process in an empty directory (so on a fresh database), against the real
# server the first block starts. Any HTTP answer that is not 2xx fails the run unless the README
# line of that command says `expected <status>` (and then the status must be that one); a command
# that fails fails the run too.
#
# Two things differ from a person typing the blocks, both mechanical: `cargo run --release -p
# bespin-http -- ARGS` runs the debug binary that `cargo build` made (a release build would add
# minutes), and the server listens on a free port instead of 8000 (`BESPIN_LISTEN`, and the
# blocks' `localhost:8000` rewritten to it), so a server already on 8000 cannot break the test.
# Installs curl and jq (Debian packages) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ROOT="$PWD"
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v jq >/dev/null 2>&1 || need+=(jq)
install_missing "${need[@]}"
cargo build --locked -q -p bespin-http --bin bespin
WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cleanup() {
    if [ -s "$WORK/server.pid" ]; then
        kill "$(cat "$WORK/server.pid")" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The runner: a prologue, then the blocks; lines.json maps each runner line to its README line.
python3 - "$ROOT/README.md" "$WORK" "$PORT" "$ROOT/target/debug/bespin" <<'PY'
import json, re, sys
readme, work, port, binary = sys.argv[1:]
lines = open(readme, encoding="utf-8").read().split("\n")
prologue = [
    "set -euo pipefail",
    f"export BESPIN_LISTEN=127.0.0.1:{port}",
    # `cargo run --release -p bespin-http -- ARGS` -> the debug binary (its pid noted for the end).
    'cargo() { if [ "${1:-} ${2:-} ${3:-} ${4:-} ${5:-}" = "run --release -p bespin-http --" ]; then shift 5; '
    f'echo "$BASHPID" > "{work}/server.pid"; exec {binary} "$@"; fi; command cargo "$@"; }}',
    # Every curl notes its status and the runner line it was called from (`-f` calls check
    # their status themselves).
    'curl() { case " $* " in *" -f"*|*" -sf"*|*" --fail"*) command curl "$@";; '
    f'*) command curl -w "%{{stderr}}@@ ${{BASH_LINENO[0]}} %{{http_code}}\\n" "$@" 2>>"{work}/status.log";; esac; }}',
]
runner, where = list(prologue), [None] * len(prologue)
section, block = False, False
for n, line in enumerate(lines, 1):
    if line.startswith("## "):
        section = line.startswith("## Quick start")
    if not section:
        continue
    if line.strip() == "```sh":
        block = True
        continue
    if block and line.strip() == "```":
        block = False
        continue
    if block:
        runner.append(line.replace("localhost:8000", f"localhost:{port}"))
        where.append(n)
if len(runner) == len(prologue):
    sys.exit("no sh block in the README's Quick start section")
open(f"{work}/quickstart.sh", "w").write("\n".join(runner) + "\n")
json.dump({"where": where, "readme": lines}, open(f"{work}/lines.json", "w"))
PY

START=$(date +%s)
if ! (cd "$WORK" && bash quickstart.sh >"$WORK/out.txt" 2>"$WORK/err.txt"); then
    echo "README quick start: a command failed" >&2
    tail -n 20 "$WORK/out.txt" "$WORK/err.txt" >&2
    exit 1
fi
python3 - "$WORK" <<'PY'
import json, re, sys
work = sys.argv[1]
m = json.load(open(f"{work}/lines.json"))
where, readme = m["where"], m["readme"]

def command_text(n):
    """The README command starting at line n, with its continuation lines."""
    text, i = readme[n - 1], n
    while readme[i - 1].rstrip().endswith("\\"):
        text += "\n" + readme[i]
        i += 1
    return text

seen, bad, expected_hit = 0, [], set()
for entry in open(f"{work}/status.log").read().split("\n"):
    if not entry.startswith("@@ "):
        continue
    _, runner_line, code = entry.split()
    n = where[int(runner_line) - 1]
    text = command_text(n)
    want = re.search(r"expected (\d{3})", text)
    seen += 1
    if want:
        expected_hit.add(n)
        if code != want.group(1):
            bad.append(f"README line {n}: answered {code}, the README says {want.group(1)}:\n{text}")
    elif not code.startswith("2"):
        bad.append(f"README line {n}: answered {code}:\n{text}")
starts = {w for w in where if w and not readme[w - 2].rstrip().endswith("\\")}
for n in {w for w in starts if re.search(r"expected \d{3}", command_text(w))} - expected_hit:
    bad.append(f"README line {n} expects an error but never ran")
if bad:
    sys.exit("README quick start:\n" + "\n".join(bad))
print(f"README quick start: {seen} requests from {len(set(w for w in where if w))} lines, "
      f"all 2xx but the {len(expected_hit)} the README marks as expected")
PY
"$ROOT/target/debug/bespin" check --db "$WORK/bespin.redb" --json >"$WORK/check.json" || {
    cat "$WORK/check.json" >&2
    exit 1
}
echo "README quick start: database consistent afterwards (bespin check), $(( $(date +%s) - START )) s"
