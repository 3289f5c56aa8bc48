#!/usr/bin/env bash
# The official MCP Inspector CLI (@modelcontextprotocol/inspector from the npm registry, pinned,
# installed under target/) against the running server at $1, headless (`--cli`): a tenant's
# admin lists the tools (whose schemas must raise no portability warning), creates a task
# through `create_task` and lists the resources; each answer is checked.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
BASE=$1
DIR=target/mcp-inspector
VERSION=2.12.0
if [ ! -x "$DIR/node_modules/.bin/mcp-inspector" ] \
    || ! grep -q "\"version\": \"$VERSION\"" "$DIR/node_modules/@modelcontextprotocol/inspector/package.json"; then
    mkdir -p "$DIR"
    (cd "$DIR" && [ -f package.json ] || npm init -y >/dev/null)
    (cd "$DIR" && npm install --silent --no-audit --no-fund "@modelcontextprotocol/inspector@$VERSION")
fi
read -r TENANT USER KEY < <(create_tenant "$BASE" Inspector)
inspect() {
    timeout 120 "$DIR/node_modules/.bin/mcp-inspector" --cli "$BASE/mcp" --transport http \
        --header "X-Tenant-ID: $TENANT" "X-User-ID: $USER" "X-API-Key: $KEY" "$@"
}
# The Inspector warns of tool schemas that clients mapping them onto a single-type dialect may
# reject ("Schema portability"); there must be none.
inspect --method tools/list 2>"$DIR/stderr" | python3 -c '
import json, sys
names = {t["name"] for t in json.load(sys.stdin)["tools"]}
assert {"create_task", "kpi_summary", "search_records"} <= names, names
print(f"inspector: tools/list: {len(names)} tools")'
if grep -q "Schema portability" "$DIR/stderr"; then cat "$DIR/stderr" >&2; exit 1; fi
inspect --method tools/call --tool-name create_task --tool-arg title=Inspected idempotency_key=insp-1 \
    | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert not r.get("isError") and r["structuredContent"]["title"] == "Inspected", r
print("inspector: tools/call create_task: task", r["structuredContent"]["task_id"])'
inspect --method resources/list | python3 -c '
import json, sys
uris = [r["uri"] for r in json.load(sys.stdin)["resources"]]
assert "bespin://briefs/latest" in uris, uris
print(f"inspector: resources/list: {len(uris)} resources")'
echo "inspector: 3 passed, 0 failed"
