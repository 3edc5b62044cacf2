#!/usr/bin/env bash
# Makes (once) the root filesystem of the local base image, a minimal Debian with python3, venv,
# pip and CA certificates, by debootstrap from this machine's Debian mirror, and prints the path
# of the cached tarball. Both container engines import it (scripts/container-engine.sh into
# Podman, scripts/docker-engine.sh into Docker Engine): no internet registry is needed.
#
# Environment (all optional):
#   ALGOSTAGE_BASE_SUITE         bookworm
#   ALGOSTAGE_DEBIAN_MIRROR      the Debian mirror from /etc/apt/sources.list(.d)
#   ALGOSTAGE_CACHE              /var/cache/algostage (where the tarball is kept)
set -euo pipefail

SUITE=${ALGOSTAGE_BASE_SUITE:-bookworm}
CACHE=${ALGOSTAGE_CACHE:-/var/cache/algostage}
say() { echo "base-rootfs: $*" >&2; }

# The Debian mirror apt uses on this machine (deb822 .sources or one-line sources.list).
debian_mirror() {
  if [[ -n ${ALGOSTAGE_DEBIAN_MIRROR:-} ]]; then echo "$ALGOSTAGE_DEBIAN_MIRROR"; return; fi
  python3 - <<'PY'
import glob, re
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.+)$", stanza, re.M))
        uris, suites = fields.get("URIs", "").split(), fields.get("Suites", "").split()
        if uris and "deb" in fields.get("Types", "").split() and any(
                s.split("-")[0] == s for s in suites) and "security" not in uris[0]:
            print(uris[0]); raise SystemExit
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        m = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
        if m and "security" not in m[1] and "-" not in m[2] and "debian" in m[1]:
            print(m[1]); raise SystemExit
print("http://deb.debian.org/debian")
PY
}

tarball="$CACHE/base-$SUITE-rootfs.tar"
mkdir -p "$CACHE"
if [[ ! -s $tarball ]]; then
  mirror=$(debian_mirror)
  dir=$(mktemp -d "$CACHE/rootfs-$SUITE.XXXXXX")
  say "debootstrap $SUITE from $mirror into $dir"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$dir" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
    || { say "debootstrap failed, see $CACHE/debootstrap.log"; tail -20 "$CACHE/debootstrap.log" >&2;
         rm -rf "$dir"; exit 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/tmp/*
  tar -C "$dir" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$dir"
fi
echo "$tarball"
