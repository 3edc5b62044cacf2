#!/usr/bin/env bash
# Installs the Debian packages AlgoStage and its tests need, when missing (needs root or sudo).
#   scripts/system-packages.sh run    what the platform needs to run
#   scripts/system-packages.sh test   plus what the test suite needs (browser, fonts, load tools)
set -euo pipefail
mode=${1:-run}
packages=(git ca-certificates nginx)   # nginx: the gateway, run by the platform's own supervisord
if [[ $mode == test ]]; then
  packages+=(chromium chromium-driver fonts-noto-cjk fonts-noto-color-emoji wrk redis-server iproute2 iptables socat)
  # redis-server: a private one the chaos tests kill; iproute2, iptables, socat: the two-node swarm (tests/cluster)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
echo "installing system packages: ${missing[*]}"
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO=sudo
$SUDO apt-get update -qq
# Packages must not start services of their own (Debian's nginx would take port 80): the platform
# runs nginx itself. policy-rc.d answering 101 tells invoke-rc.d "not now", for this install only.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee $policy >/dev/null && $SUDO chmod +x $policy
  trap '$SUDO rm -f $policy' EXIT
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
