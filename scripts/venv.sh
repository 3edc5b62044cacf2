#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs the pinned requirements: `run` or `test` set.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
req=requirements.txt
[[ $mode == test ]] && req=requirements-dev.txt
stamp=".venv/.installed-$(cat requirements*.txt demo_data/requirements-demo.txt 2>/dev/null | sha256sum | cut -c1-16)-$mode"
# This machine's pip config lists local indexes that may not exist; pip warns once per package
# about each, hundreds of lines that would bury a real error in the CI log.
pip_install() {
  .venv/bin/python -m pip install -q "$@" 2> >(grep -v "is neither a file nor a directory" >&2 || true)
}
if [[ ! -f $stamp ]]; then
  pip_install --upgrade pip
  pip_install -r "$req"
  touch "$stamp"
fi
