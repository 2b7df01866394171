#!/usr/bin/env bash
# bench/registry.sh - the local registry the pull benchmarks read from.
#
#   registry.sh start   start docker-registry (distribution 2.8, plain HTTP, no auth)
#                       on $BENCH_REGISTRY (default 127.0.0.1:5000), storage under
#                       $BENCH_DIR/registry, and push every image of $BENCH_DIR/images
#                       as $BENCH_REGISTRY/<name>:latest with skopeo (skipped when the
#                       registry already serves the same manifest digest)
#   registry.sh push    push again (registry must answer)
#   registry.sh stop    stop the registry this script started (PID file)
#   registry.sh status  running or not, and the catalog
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
BENCH_TAG=registry

RDIR=$BENCH_DIR/registry
PIDFILE=$RDIR/pid
ADDR=$BENCH_REGISTRY

answers() { curl -fsS -m 2 -o /dev/null "http://$ADDR/v2/" 2>/dev/null; }

our_pid() { # prints the PID of the registry we started, if it still runs
  local pid exe
  [ -s "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "$exe" = "$(readlink -f "$(command -v docker-registry)")" ] || return 1
  echo "$pid"
}

push() {
  answers || bench_die "no registry answers on http://$ADDR"
  local lay name want have
  for lay in "$BENCH_DIR"/images/*/; do
    lay=${lay%/}; name=${lay##*/}
    [ -f "$lay/index.json" ] || continue
    want=sha256:$(bench_manifest_hex "$lay")
    have=$(curl -fsS -m 5 -o /dev/null -w '%header{docker-content-digest}' \
             -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
             -I "http://$ADDR/v2/$name/manifests/latest" 2>/dev/null || true)
    if [ "$have" = "$want" ]; then
      bench_log "$ADDR/$name:latest is up to date ($want)"
      continue
    fi
    skopeo copy -q --dest-tls-verify=false "oci:$lay:latest" "docker://$ADDR/$name:latest"
    have=$(skopeo inspect --raw --tls-verify=false "docker://$ADDR/$name:latest" | sha256sum | cut -d' ' -f1)
    [ "sha256:$have" = "$want" ] || bench_log "warning: $name: registry digest sha256:$have differs from the layout's $want"
    bench_log "pushed $ADDR/$name:latest ($want)"
  done
}

start() {
  bench_ensure docker-registry:docker-registry skopeo:skopeo curl:curl jq:jq
  local pid
  if pid=$(our_pid); then
    bench_log "running (pid $pid) on http://$ADDR"
  elif answers; then
    # someone else's registry: do not overwrite its tags unless asked to
    [ "${BENCH_REGISTRY_REUSE:-0}" = 1 ] ||
      bench_die "another registry answers on http://$ADDR; set BENCH_REGISTRY=127.0.0.1:<free port> (or BENCH_REGISTRY_REUSE=1 to push into it)"
    bench_log "pushing into the registry that already answers on http://$ADDR (BENCH_REGISTRY_REUSE=1)"
  else
    mkdir -p "$RDIR/storage"
    cat > "$RDIR/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $RDIR/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $ADDR
EOF
    setsid docker-registry serve "$RDIR/config.yml" >> "$RDIR/registry.log" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    local i
    for i in $(seq 50); do answers && break; sleep 0.1; done
    answers || { tail -n 20 "$RDIR/registry.log" >&2; bench_die "registry did not come up on $ADDR"; }
    bench_log "started docker-registry pid $(cat "$PIDFILE") on http://$ADDR (storage $RDIR/storage)"
  fi
  push
}

stop() {
  local pid i
  if pid=$(our_pid); then
    kill "$pid"
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    bench_log "stopped pid $pid"
  else
    bench_log "not running (or not started by this script)"
  fi
  rm -f "$PIDFILE"
}

status() {
  local pid
  if pid=$(our_pid); then echo "running: pid $pid on http://$ADDR"
  elif answers; then echo "a registry not started by this script answers on http://$ADDR"
  else echo "not running"; return 1; fi
  curl -fsS "http://$ADDR/v2/_catalog"; echo
}

case ${1:-} in
  start|stop|push|status) "$1" ;;
  *) echo "usage: $0 start|stop|push|status   (env BENCH_DIR, BENCH_REGISTRY)" >&2; exit 2 ;;
esac
