#!/usr/bin/env bash
# The whole test suite: unit, integration (real PostgreSQL, supervisord, git, container engines,
# a Docker swarm, browser), UI, end-to-end. Installs and starts what it needs; a missing engine
# fails the run, it is never skipped.
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
# Docker Engine (Debian's docker.io) on a socket of its own: the docker runtime's second engine, and
# as a single-node swarm manager with the local registry, the swarm runtime's.
if [[ -z ${ALGOSTAGE_TEST_DOCKERD_HOST:-} ]]; then
  dockerd=$(scripts/docker-engine.sh --swarm) || { echo "FAIL: Docker Engine could not be set up" >&2; exit 1; }
  ALGOSTAGE_TEST_DOCKERD_HOST=$(tail -1 <<<"$dockerd" | sed 's/^DOCKER_HOST=//')
  export ALGOSTAGE_TEST_DOCKERD_HOST
fi
# Unbuffered, so a CI log shows how far the run got even if it is cut off.
export PYTHONUNBUFFERED=1
echo "test.sh: environment ready after ${SECONDS}s; running pytest" >&2
exec .venv/bin/python -m pytest "$@"
