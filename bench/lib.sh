# bench/lib.sh - helpers shared by the bench scripts (sourced, not executed).
# shellcheck shell=bash

BENCH_DIR=${BENCH_DIR:-/var/tmp/berth-bench}
BENCH_REGISTRY=${BENCH_REGISTRY:-127.0.0.1:5000}
BENCH_IMAGES=(busybox debian many-small-files)

bench_log() { printf '[%s %(%H:%M:%S)T] %s\n' "${BENCH_TAG:-bench}" -1 "$*" >&2; }
bench_die() { bench_log "error: $*"; exit 1; }

bench_need_root() { [ "$(id -u)" = 0 ] || bench_die "must run as root"; }

# bench_ensure CMD:PACKAGE ...  - apt-get install the packages whose command is missing
bench_ensure() {
  local pair cmd pkg missing=()
  for pair in "$@"; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  bench_log "installing: ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; then
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
      bench_die "apt-get install ${missing[*]} failed"
  fi
}

# manifest digest (hex) and layer blob paths of the "latest" image of an OCI layout
bench_manifest_hex() { jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="latest") | .digest' "$1/index.json" | head -n1 | cut -d: -f2; }
bench_layer_paths() {
  local lay=$1 m; m=$(bench_manifest_hex "$lay")
  jq -r '.layers[].digest' "$lay/blobs/sha256/$m" | sed "s|^sha256:|$lay/blobs/sha256/|"
}
