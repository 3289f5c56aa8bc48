# Shared by the load scripts (sourced).

# Exits when something already answers on 127.0.0.1:PORT: it would pass the health checks and
# take the load in our server's place (another session's server, a forgotten run).
refuse_busy_port() {
  if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/"; then
    echo "$(basename "$0"): port $1 is in use; choose another${2:+ with $2}" >&2
    exit 2
  fi
}

# Builds the release binaries (cargo's arguments), then waits for the build's files to reach the
# disk: a build leaves hundreds of MB for the kernel to write back over the next half minute,
# which would share the disk with the first measurement's fsyncs (invoke's p99 at 16 connections
# right after a build 4.01 / 3.89 ms, after `sync` 2.35 / 2.67 ms: stop 37, two probes).
build_release() {
  cargo build --release -q "$@"
  sync
}
