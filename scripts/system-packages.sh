#!/usr/bin/env bash
# Installs the Debian packages AlgoStage and its tests need, when missing (needs root or sudo).
#   scripts/system-packages.sh run    what the platform needs to run
#   scripts/system-packages.sh test   plus what the test suite needs (browser, fonts, load tools)
set -euo pipefail
mode=${1:-run}
packages=(git ca-certificates)
if [[ $mode == test ]]; then
  packages+=(chromium chromium-driver fonts-noto-cjk fonts-noto-color-emoji wrk)
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
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
