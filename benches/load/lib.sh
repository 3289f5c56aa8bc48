# Shared by the load scripts (sourced).

# Exits when something already answers on 127.0.0.1:PORT: it would pass the health checks and
# take the load in our server's place (another session's server, a forgotten run).
refuse_busy_port() {
  if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/"; then
    echo "$(basename "$0"): port $1 is in use; choose another${2:+ with $2}" >&2
    exit 2
  fi
}
