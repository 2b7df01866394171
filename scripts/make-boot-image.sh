#!/usr/bin/env bash
# make-boot-image.sh - an OCI image layout of a small Debian bookworm with systemd, for
# `berth run --boot` tests (test/integration/machine-systemd.test.ts reads it from
# BERTH_TEST_BOOT_IMAGE, or from the default cache path below when that is unset).
#
#   debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm
#   apt caches and lists removed, /etc/machine-id empty; one gzip layer; Cmd ["/sbin/init"]
#
# Built once and cached in $BOOT_IMAGE_DIR (default /var/cache/berth-test/boot-image);
# rebuilt only when its index.json is missing, the recipe below changed, or --force.
# Network: debootstrap from the Debian mirror apt uses (MIRROR=url to override).
# Prints the layout path on stdout (progress goes to stderr). Root only.
#
# usage: scripts/make-boot-image.sh [--force]
set -euo pipefail

RECIPE=berth-boot-image-v1
SUITE=bookworm
OUT=${BOOT_IMAGE_DIR:-/var/cache/berth-test/boot-image}
force=0
for a in "$@"; do
  case $a in
    --force) force=1 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $a (see --help)" >&2; exit 2 ;;
  esac
done

log() { printf '[make-boot-image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap)"

cached() { [ -f "$OUT/index.json" ] && [ "$(cat "$OUT.recipe" 2>/dev/null)" = "$RECIPE" ]; }
if [ $force = 0 ] && cached; then echo "$OUT"; exit 0; fi

mkdir -p "$(dirname "$OUT")"
# one builder at a time; a second caller waits, then finds the cached image
exec 9> "$OUT.lock"
flock -w 900 9 || die "another make-boot-image.sh holds $OUT.lock"
if [ $force = 0 ] && cached; then echo "$OUT"; exit 0; fi

need=()
command -v debootstrap > /dev/null || need+=(debootstrap)
command -v umoci > /dev/null || need+=(umoci)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${need[@]}" > /dev/null ||
    { apt-get update -q > /dev/null && apt-get install -y -q "${need[@]}" > /dev/null; }
fi

# shellcheck source=scripts/lib/apt-mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt-mirror.sh"
MIRROR=${MIRROR:-$(apt_mirror)}

work=$(mktemp -d "$(dirname "$OUT")/.boot-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
t0=$(date +%s)
log "debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus $SUITE from $MIRROR"
if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus \
    "$SUITE" "$root" "$MIRROR" > "$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log" >&2
  cp "$work/debootstrap.log" "$OUT.debootstrap.log" 2>/dev/null || true
  die "debootstrap failed (log: $OUT.debootstrap.log)"
fi
log "debootstrap: $(( $(date +%s) - t0 )) s"

(
  cd "$root"
  rm -rf dev/* proc/* sys/* run/* tmp/* var/tmp/*
  rm -rf var/cache/apt/archives/*.deb var/cache/apt/archives/partial/* var/cache/apt/*.bin var/lib/apt/lists/*
  rm -f var/log/bootstrap.log var/cache/ldconfig/aux-cache etc/resolv.conf
  : > etc/machine-id
  rm -f var/lib/dbus/machine-id
  echo berth-boot > etc/hostname
)

# layer: PAX tar, sorted names without "./", numeric owners, xattrs (file capabilities)
(cd "$root" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort > "$work/names")
tar -C "$root" -cf "$work/layer.tar" --format=pax --numeric-owner --xattrs --no-recursion \
  --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' -T "$work/names"

lay=$work/layout
umoci init --layout "$lay"
umoci new --image "$lay:latest"
umoci raw add-layer --image "$lay:latest" --history.author berth-test \
  --history.created_by "debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus $SUITE $MIRROR" "$work/layer.tar"
umoci config --image "$lay:latest" --no-history --author berth-test --os linux --architecture amd64 \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.cmd /sbin/init --config.workingdir / \
  --config.label org.opencontainers.image.title=berth-boot-debian
umoci gc --layout "$lay"
rm -rf "$OUT" && mv "$lay" "$OUT"
echo "$RECIPE" > "$OUT.recipe"
log "built $OUT in $(( $(date +%s) - t0 )) s ($(du -sh "$OUT" | cut -f1))"
echo "$OUT"
