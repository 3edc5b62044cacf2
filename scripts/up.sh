#!/usr/bin/env bash
# Fresh machine to running platform: system packages, .venv, migrations, supervisord, UI, and the
# demo catalog uploaded and deployed (first run builds one environment per demo algorithm).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-packages.sh run
scripts/venv.sh run
.venv/bin/python -m app up "$@"
.venv/bin/python -m app demo
.venv/bin/python -m app services
