#!/usr/bin/env bash
# Builds the `bespin` Python package from this checkout into a venv under target/, then runs the
# pytest suite and `mypy --strict` on the package and the examples.
#
#   bespin-py/run-tests.sh            # what ./test.sh and .ci/run call
#   BESPIN_PY_PROFILE=release ...     # build the extension optimised (default: dev, fast to build)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="$root/target/py-venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pytest mypy
# pip runs maturin as the PEP 517 backend (exactly `pip install ./bespin-py`); the dev profile
# reuses what `cargo test` already compiled in target/.
MATURIN_PEP517_ARGS="--profile ${BESPIN_PY_PROFILE:-dev}" \
    "$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$here"

cd "$root"
"$venv/bin/python" -m pytest "$here/tests" -q
# A second run of the suite (on PostgreSQL, from ./test.sh) skips what the first checked.
[ -n "${BESPIN_PY_SKIP_MYPY:-}" ] && exit 0
"$venv/bin/python" -m mypy --strict --config-file "$here/pyproject.toml" \
    "$here/examples" "$here/tests" "$here/python/bespin"
