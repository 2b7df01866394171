#!/usr/bin/env bash
# install-deps.sh - install everything berth's build and tests need on Debian 12. Idempotent:
# apt runs only when a package is missing (and `apt-get update` only then), `npm ci` only
# when node_modules was not installed from the current package-lock.json.
#
#   scripts/install-deps.sh            system packages (root) + npm dependencies
#   SKIP_APT=1 scripts/install-deps.sh npm dependencies only
#
# Node.js >= 20.10 must already be installed (Debian 12 ships 18, which is too old).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # registry, image tools the integration tests run against
  docker-registry skopeo umoci busybox-static zstd apache2-utils erofs-utils jq openssl attr
  # isal: ISA-L's igzip, the fast gzip inflater for layers (node:zlib is the fallback)
  isal
  # runtimes, namespaces, networking
  systemd-container bubblewrap uidmap iproute2 nftables util-linux
  # user containers: pasta (private network + published ports), curl (rootless tests)
  passt curl
  # per-zone resolver (names of machines in a zone); only the binary, no system service
  dnsmasq-base
  # catatonit: the static init berth binds into containers (signals, reaping, exit codes)
  catatonit
  # basics (usually present, listed so a minimal image works)
  ca-certificates tar gzip coreutils findutils procps
  # native npm addons (zstd-napi, usocket) build from source: prebuilt downloads need GitHub
  python3 make g++ gcc libc6-dev
)

log() { printf '[install-deps] %s\n' "$*" >&2; }

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${SKIP_APT:-0}" = 1 ]; then
  [ ${#missing[@]} -eq 0 ] || log "SKIP_APT=1; missing: ${missing[*]}"
elif [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # docker-registry's postinst starts its service; there is no systemd as PID 1 on CI hosts,
  # and the tests start their own registries, so do not start services during install.
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made_policy=1; fi
  trap 'if [ $made_policy = 1 ]; then rm -f "$policy"; fi' EXIT
  # update only when the lists are absent or the install fails for lack of them
  if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' -e '^auxfiles$')" ]; then
    log "apt-get update"; apt-get update -q
  fi
  log "apt-get install ${missing[*]}"
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" < /dev/null; then
    log "install failed; refreshing package lists and retrying"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}" < /dev/null
  fi
else
  log "Debian packages: all present"
fi

command -v node >/dev/null || { log "node is not installed (need >= 20.10)"; exit 1; }
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=10)?0:1)' ||
  { log "node $(node --version) is too old (need >= 20.10)"; exit 1; }

# node_modules/.berth-deps records the sha256 of the lockfile it was installed from.
marker=node_modules/.berth-deps
if [ -f package-lock.json ]; then
  want=$(sha256sum package-lock.json package.json | sha256sum | cut -d' ' -f1)
  if [ "${FORCE_NPM:-0}" != 1 ] && [ -d node_modules ] &&
     { [ "$(cat "$marker" 2>/dev/null)" = "$want" ] || { [ ! -f "$marker" ] && npm ls --depth=0 >/dev/null 2>&1; }; }; then
    log "node_modules up to date"
  else
    log "npm ci"; npm ci --no-audit --no-fund
  fi
  echo "$want" > "$marker"
else
  log "npm install (no lockfile)"; npm install --no-audit --no-fund
fi
