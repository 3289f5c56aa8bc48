#!/usr/bin/env bash
# Instructions per operation of profile_ops under callgrind, for one or two builds:
#   benches/callgrind.sh [OLD_BINARY] NEW_BINARY
# Each operation runs N times (default 300) and once with 0 for its set-up, which is
# subtracted: (Ir(N) - Ir(0)) / N. Callgrind counts instructions, so the figures are the same
# from run to run on one machine, whatever else it runs.
set -euo pipefail
N=${N:-300}
OPS=${OPS:-"task invoke chat meter append latest search"}
ir() { # binary op n
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$2" "$3" 2>&1 >/dev/null \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-8s' op; for b in "$@"; do printf '%16s' "$(basename "$(dirname "$b")")"; done; echo
for op in $OPS; do
  printf '%-8s' "$op"
  for b in "$@"; do
    full=$(ir "$b" "$op" "$N"); base=$(ir "$b" "$op" 0)
    printf '%16s' $(( (full - base) / N ))
  done
  echo
done
