#!/usr/bin/env bash
# The whole test suite: unit, integration (real PostgreSQL, supervisord, git, container engine,
# browser), UI, end-to-end. Installs and starts what it needs; a missing engine fails the run, it
# is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-packages.sh test
scripts/venv.sh test
# Podman's Docker-compatible API and the local base image, for the docker runtime's tests.
if [[ -z ${DOCKER_HOST:-} ]]; then
  engine=$(scripts/container-engine.sh) || { echo "FAIL: the container engine could not be set up" >&2; exit 1; }
  DOCKER_HOST=$(tail -1 <<<"$engine" | sed 's/^DOCKER_HOST=//')
  export DOCKER_HOST
fi
# Unbuffered, so a CI log shows how far the run got even if it is cut off.
export PYTHONUNBUFFERED=1
echo "test.sh: environment ready after ${SECONDS}s; running pytest" >&2
exec .venv/bin/python -m pytest "$@"
