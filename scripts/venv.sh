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
if [[ ! -f $stamp ]]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$req"
  touch "$stamp"
fi
