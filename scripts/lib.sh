# Helpers that the test scripts source (`. scripts/lib.sh` from the repository root).

# install_missing PKG...: installs these Debian packages (nothing when none is given), with sudo
# unless root. Callers list only what is missing, so a prepared machine installs nothing.
install_missing() {
    [ $# -gt 0 ] || return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "$(basename "$0"): installing $*" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# start_server DIR [VAR=VALUE...]: starts target/debug/bespin on a free loopback port, with these
# environment variables and its database at DIR/db.redb, and waits until it listens (its address
# is in DIR/db.redb.control). Sets SERVER (its pid) and BASE (http://ADDRESS); its log goes to
# DIR/server.log.
start_server() {
    local dir=$1
    shift
    env "$@" target/debug/bespin serve --listen 127.0.0.1:0 --db "$dir/db.redb" 2>"$dir/server.log" &
    SERVER=$!
    for _ in $(seq 1 200); do
        [ -s "$dir/db.redb.control" ] && break
        sleep 0.05
    done
    BASE="http://$(head -n1 "$dir/db.redb.control")"
}

# create_tenant BASE NAME: creates a tenant through POST BASE/v1/tenants and prints its id, its
# admin's user id and its API key on one line (read -r TENANT USER KEY < <(create_tenant …)).
create_tenant() {
    python3 - "$1" "$2" <<'PY'
import json, sys, urllib.request
base, name = sys.argv[1], sys.argv[2]
req = urllib.request.Request(base + "/v1/tenants", method="POST",
    data=json.dumps({"name": name, "region": "eu", "admin_email": f"{name.lower()}@example.com"}).encode(),
    headers={"Content-Type": "application/json"})
t = json.load(urllib.request.urlopen(req))
print(t["tenant_id"], t["admin"]["user_id"], t["api_key"])
PY
}
