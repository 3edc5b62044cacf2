#!/usr/bin/env bash
# Installs (Debian's docker.io, and docker-registry with --swarm, when missing) and starts Docker
# Engine on a socket of its own, beside anything else on the machine (its own data root, exec root
# and pid file; no systemd), imports the local base image the generated Dockerfiles start FROM,
# and with --swarm makes it a single-node swarm manager with a local registry the cluster's nodes
# pull the platform's images from. Idempotent; run as root. Prints DOCKER_HOST=… as its last line.
#
#   scripts/docker-engine.sh            Docker Engine + base image
#   scripts/docker-engine.sh --swarm    … + swarm manager (advertised on 127.0.0.1) + registry
#
# Environment (all optional):
#   ALGOSTAGE_DOCKERD_SOCKET      /run/algostage-docker.sock
#   ALGOSTAGE_DOCKERD_ROOT        /var/lib/algostage-docker   (images, containers, swarm state)
#   ALGOSTAGE_DOCKERD_EXEC_ROOT   /run/algostage-docker
#   ALGOSTAGE_DOCKERD_LOG         /var/log/algostage-docker.log
#   ALGOSTAGE_DOCKER_BASE_IMAGE   algostage/base:bookworm
#   ALGOSTAGE_SWARM_ADVERTISE     127.0.0.1
#   ALGOSTAGE_REGISTRY_ADDR       127.0.0.1:5000   (Docker trusts a registry on 127.0.0.0/8 over HTTP)
#   ALGOSTAGE_REGISTRY_ROOT       /var/lib/algostage-registry
#   ALGOSTAGE_REGISTRY_LOG        /var/log/algostage-registry.log
set -euo pipefail

SOCKET=${ALGOSTAGE_DOCKERD_SOCKET:-/run/algostage-docker.sock}
DATA_ROOT=${ALGOSTAGE_DOCKERD_ROOT:-/var/lib/algostage-docker}
EXEC_ROOT=${ALGOSTAGE_DOCKERD_EXEC_ROOT:-/run/algostage-docker}
LOG=${ALGOSTAGE_DOCKERD_LOG:-/var/log/algostage-docker.log}
IMAGE=${ALGOSTAGE_DOCKER_BASE_IMAGE:-algostage/base:bookworm}
ADVERTISE=${ALGOSTAGE_SWARM_ADVERTISE:-127.0.0.1}
REGISTRY=${ALGOSTAGE_REGISTRY_ADDR:-127.0.0.1:5000}
REGISTRY_ROOT=${ALGOSTAGE_REGISTRY_ROOT:-/var/lib/algostage-registry}
REGISTRY_LOG=${ALGOSTAGE_REGISTRY_LOG:-/var/log/algostage-registry.log}
HERE=$(cd "$(dirname "$0")" && pwd)
swarm=false
for arg in "$@"; do
  case $arg in
    --swarm) swarm=true ;;
    *) echo "usage: $0 [--swarm]" >&2; exit 2 ;;
  esac
done

say() { echo "docker-engine: $*" >&2; }
dockercli() { docker --host "unix://$SOCKET" "$@"; }

if [[ $(id -u) -ne 0 ]]; then
  say "must run as root (dockerd, debootstrap)"; exit 1
fi

install_packages() {
  local missing=() p wanted=(docker.io curl)
  $swarm && wanted+=(docker-registry)
  [[ -s ${ALGOSTAGE_CACHE:-/var/cache/algostage}/base-${ALGOSTAGE_BASE_SUITE:-bookworm}-rootfs.tar ]] || wanted+=(debootstrap)
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  say "installing ${missing[*]}"
  apt-get update -qq
  # The packages must not start Debian's own docker or registry service: this script starts its own.
  local policy=/usr/sbin/policy-rc.d created=false
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && created=true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  if $created; then rm -f $policy; fi
}

# Starts `$@` in the background, detached for good: its own session, from /, every descriptor
# (stdin, stdout, stderr and any a caller such as CI holds above 2) away from the caller, so a
# $(…) around this script returns.
detach() {
  local log=$1; shift
  (
    cd /
    for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; if ((fd > 2)); then eval "exec $fd>&-"; fi; done
    exec setsid "$@"
  ) >>"$log" 2>&1 </dev/null &
  disown
}

ping() { curl -fsS --max-time 3 --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; }

start_daemon() {
  if ping; then return 0; fi
  rm -f "$SOCKET"
  mkdir -p "$DATA_ROOT" "$EXEC_ROOT"
  say "starting dockerd on unix://$SOCKET (data root $DATA_ROOT, log: $LOG)"
  detach "$LOG" dockerd --host "unix://$SOCKET" --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT" \
    --pidfile "$EXEC_ROOT/dockerd.pid"
  for _ in $(seq 1 120); do
    if ping; then return 0; fi
    sleep 0.5
  done
  say "dockerd did not answer /_ping within 60s; last log lines:"; tail -20 "$LOG" >&2; exit 1
}

import_base_image() {
  if dockercli image inspect "$IMAGE" >/dev/null 2>&1; then say "base image $IMAGE present"; return 0; fi
  local tarball
  tarball=$("$HERE/base-rootfs.sh")
  say "importing $tarball as $IMAGE"
  dockercli import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$IMAGE" <"$tarball" >/dev/null
}

init_swarm() {
  local state
  state=$(dockercli info --format '{{.Swarm.LocalNodeState}}')
  if [[ $state == active ]]; then say "swarm manager active"; return 0; fi
  say "swarm init (advertised on $ADVERTISE)"
  dockercli swarm init --advertise-addr "$ADVERTISE" >/dev/null
}

registry_ping() { curl -fsS --max-time 3 "http://$REGISTRY/v2/" >/dev/null 2>&1; }

start_registry() {
  if registry_ping; then say "registry answers at $REGISTRY"; return 0; fi
  mkdir -p "$REGISTRY_ROOT"
  cat >"$REGISTRY_ROOT/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $REGISTRY_ROOT/data}
  delete: {enabled: true}
http:
  addr: $REGISTRY
EOF
  say "starting docker-registry at $REGISTRY (log: $REGISTRY_LOG)"
  detach "$REGISTRY_LOG" docker-registry serve "$REGISTRY_ROOT/config.yml"
  for _ in $(seq 1 60); do
    if registry_ping; then return 0; fi
    sleep 0.5
  done
  say "docker-registry did not answer within 30s; last log lines:"; tail -20 "$REGISTRY_LOG" >&2; exit 1
}

install_packages
start_daemon
import_base_image
if $swarm; then
  init_swarm
  start_registry
fi
echo "DOCKER_HOST=unix://$SOCKET"
