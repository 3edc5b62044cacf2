#!/usr/bin/env bash
# Installs (podman, runc, catatonit for --init, debootstrap, uidmap, curl when missing) and starts
# the container engine the docker runtime talks to: Podman's Docker-compatible API on a unix socket
# (no Docker daemon needed), and builds the local base image the generated Dockerfiles start FROM.
# Idempotent; run as root. Prints the DOCKER_HOST to use as its last line.
#
#   scripts/container-engine.sh                    engine + base image
#   ALGOSTAGE_DOCKER_BASE_IMAGE=… scripts/container-engine.sh
#
# Environment (all optional):
#   ALGOSTAGE_PODMAN_SOCKET      /run/algostage-podman.sock
#   ALGOSTAGE_DOCKER_BASE_IMAGE  algostage/base:bookworm
#   ALGOSTAGE_BASE_SUITE, ALGOSTAGE_DEBIAN_MIRROR, ALGOSTAGE_CACHE   see scripts/base-rootfs.sh
set -euo pipefail

SOCKET=${ALGOSTAGE_PODMAN_SOCKET:-/run/algostage-podman.sock}
IMAGE=${ALGOSTAGE_DOCKER_BASE_IMAGE:-algostage/base:bookworm}
LOG=${ALGOSTAGE_PODMAN_LOG:-/var/log/algostage-podman.log}
CONF=${CONTAINERS_CONF:-/etc/containers/containers.conf}  # podman reads CONTAINERS_CONF too

say() { echo "container-engine: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  say "must run as root (podman's rootful service, debootstrap)"; exit 1
fi

install_packages() {
  local missing=() p
  for p in podman runc catatonit debootstrap uidmap curl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# runc instead of crun (crun fails on this kernel's cgroups) and no default ulimits.
configure_engine() {
  mkdir -p "$(dirname "$CONF")"
  python3 - "$CONF" <<'PY'
import re, sys
from pathlib import Path

path = Path(sys.argv[1])
text = path.read_text() if path.exists() else ""
wanted = {"engine": ("runtime", '"runc"'), "containers": ("default_ulimits", "[]")}

def ensure(text: str, table: str, key: str, value: str) -> str:
    line = f"{key} = {value}"
    header = re.search(rf"^\[{table}\][ \t]*$", text, re.M)
    if header is None:
        return text.rstrip("\n") + ("\n\n" if text.strip() else "") + f"[{table}]\n{line}\n"
    start = header.end()
    nxt = re.search(r"^\[[^\]]+\][ \t]*$", text[start:], re.M)
    end = start + nxt.start() if nxt else len(text)
    body = text[start:end]
    # a value may be a multi-line array: `key = [\n "a",\n]`
    existing = re.search(rf"^[ \t]*{key}[ \t]*=[ \t]*(\[[^\]]*\][^\n]*|[^\n]*)$", body, re.M)
    if existing:
        body = body[:existing.start()] + line + body[existing.end():]
    else:
        body = "\n" + line + body
    return text[:start] + body + text[end:]

new = text
for table, (key, value) in wanted.items():
    new = ensure(new, table, key, value)
if new != text:
    path.write_text(new)
    print(f"container-engine: wrote {path}", file=sys.stderr)
PY
}

ping() { curl -fsS --max-time 3 --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; }

# A service whose working directory was deleted (it was started from a checkout that is gone)
# answers /_ping but cannot start containers ("conmon: Failed to get working directory").
stale_service() {
  local pid
  for pid in $(pgrep -f "podman system service .*unix://$SOCKET" || true); do
    if [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == *"(deleted)" ]]; then echo "$pid"; fi
  done
}

start_service() {
  local stale
  stale=$(stale_service)
  if [[ -n $stale ]]; then
    say "restarting podman system service: its working directory was deleted (pid $stale)"
    kill $stale 2>/dev/null || true
    sleep 1
  elif ping; then
    return 0
  fi
  rm -f "$SOCKET"
  say "starting podman system service on unix://$SOCKET (log: $LOG)"
  # From / so the service never holds a checkout's directory (conmon needs its cwd to exist).
  # Every descriptor of the background job goes to the log: callers read this script's output
  # with $(…), which waits until nothing holds its pipe open (a wrapper shell keeping it hung CI).
  # Descriptors above 2 (a CI runner's own pipes) are closed too.
  (
    cd /
    for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; if ((fd > 2)); then eval "exec $fd>&-"; fi; done
    exec setsid podman system service --time=0 "unix://$SOCKET"
  ) >>"$LOG" 2>&1 </dev/null &
  disown
  for _ in $(seq 1 60); do
    if ping; then return 0; fi
    sleep 0.5
  done
  say "podman service did not answer /_ping within 30s; last log lines:"; tail -20 "$LOG" >&2; exit 1
}

build_base_image() {
  if podman image exists "$IMAGE"; then say "base image $IMAGE present"; return 0; fi
  local tarball
  tarball=$("$(dirname "$0")/base-rootfs.sh")
  say "importing $tarball as $IMAGE"
  podman import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$IMAGE" <"$tarball" >/dev/null
}

install_packages
configure_engine
start_service
build_base_image
echo "DOCKER_HOST=unix://$SOCKET"
