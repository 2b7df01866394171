#!/usr/bin/env bash
# bench/run.sh - berth's benchmarks against the existing tools, on this machine.
#
# usage: bench/run.sh [SECTION...]        (npm run bench -- SECTION...)
#   pull     cold pulls of busybox, debian and many-small-files from a local registry,
#            side by side: berth pull, skopeo copy (pull-to-store), podman pull and
#            skopeo copy + umoci raw unpack (pull-to-rootfs), and the floors for the
#            same blobs read from local disk (zcat >/dev/null, zcat | tar -x onto the
#            bench dir); plus startup: `berth --help` vs `node -e 0`
#   startup  only the startup rows
#   start    container start: `berth run --rm IMAGE true` (foreground, on this host) vs
#            `podman run --rm --network=none` vs raw `systemd-nspawn` on the same rootfs;
#            then, in a test host (systemd as PID 1, bench/testhost.mts), `berth run -d`
#            until active and `berth stop` vs `podman run -d` / `podman stop`, and what
#            stays resident per running container (berth/node processes, supervisor RSS)
#   net      networking, in a test host: HTTP throughput through a published port on
#            127.0.0.1 vs the machine's zone address vs `podman run -p`; `berth run --rm`
#            with default networking vs `podman run --rm` with its default bridge
#   scale    boring at scale (bench/scale.sh): `ps -a` with 10 and 200 machines (100
#            running), 100 `run -d` and 100 `rm -f` at once, `run -d` until active,
#            `run --rm --network=none`, resident memory per machine; berth in a test host,
#            podman on this VM (podman cannot run in the test host)
#   rootless `berth run --rm` vs rootless `podman run --rm`, both as the unprivileged
#            user tuser in a test host (bench/rootless.sh; not in the default list: it
#            boots a test host and creates the user there, ~2-3 min)
#   help     this text
#   (no section: pull start net scale)
#
# env: QUICK=1          2 timed runs per pull row (smoke test) instead of 10
#      RUNS_PULL=N RUNS_STARTUP=N WARMUP_PULL=N   override run / warm-up counts
#      BENCH_DIR=/var/tmp/berth-bench   images, registry storage, work dirs, results
#      BENCH_REGISTRY=127.0.0.1:5000    where the local registry listens
#      BENCH_BUILD=1    `npm run build` first (without dist/, bin/berth runs the
#                       TypeScript sources through tsx, which the startup row shows)
#      IMAGES="busybox debian"          only these images (default: all three)
#      BERTH_BIN=path   another berth executable (default ./bin/berth)
#      PROBE_TIMEOUT=600  seconds allowed for the single probe run of each command
#      START_IMAGES="busybox debian"   images of the start section; RUNS_START=N (default 20)
# Needs root. Installs what it lacks with apt-get. Results: $BENCH_DIR/results/<timestamp>/
# (report.md, rows.jsonl, hyperfine JSON in json/, stderr in err/); the report is printed.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
BENCH_TAG=bench

usage() { sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; }

sections=()
for a in "$@"; do
  case $a in
    pull|startup|start|net|scale|rootless) sections+=("$a") ;;
    help|-h|--help) usage; exit 0 ;;
    *) echo "unknown section: $a" >&2; usage >&2; exit 2 ;;
  esac
done
[ ${#sections[@]} -gt 0 ] || sections=(pull start net scale)
want() { local s; for s in "${sections[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

bench_need_root
cd "$ROOT" || exit 1

if [ "${QUICK:-0}" = 1 ]; then
  RUNS_PULL=${RUNS_PULL:-2} WARMUP_PULL=${WARMUP_PULL:-0} RUNS_STARTUP=${RUNS_STARTUP:-10} WARMUP_STARTUP=3
  RUNS_START=${RUNS_START:-5}
else
  RUNS_PULL=${RUNS_PULL:-10} WARMUP_PULL=${WARMUP_PULL:-1} RUNS_STARTUP=${RUNS_STARTUP:-40} WARMUP_STARTUP=5
  RUNS_START=${RUNS_START:-20}
fi
PROBE_TIMEOUT=${PROBE_TIMEOUT:-600}

bench_ensure hyperfine:hyperfine jq:jq podman:podman skopeo:skopeo umoci:umoci \
  docker-registry:docker-registry curl:curl zcat:gzip tar:tar node:nodejs igzip:isal zstd:zstd

OUT=$BENCH_DIR/results/$(date +%Y%m%d-%H%M%S)
W=$BENCH_DIR/work
mkdir -p "$OUT/json" "$OUT/err" "$W"
ln -sfn "$OUT" "$BENCH_DIR/results/latest"
ROWS=$OUT/rows.jsonl
: > "$ROWS"
T_START=$(date +%s)

PODMAN="podman --root $BENCH_DIR/podman/root --runroot $BENCH_DIR/podman/run --tmpdir $BENCH_DIR/podman/tmp"
BERTH="${BERTH_BIN:-./bin/berth} --root $W/berth-root"
REG=$BENCH_REGISTRY

# ------------------------------------------------------------------ helpers
psi_total() { sed -n 's/^some .*total=\([0-9]*\).*/\1/p' /proc/pressure/cpu 2>/dev/null || echo 0; }
now_us() { echo $(($(date +%s%N) / 1000)); }

# first informative line of an error output: an "error"-looking line if any, else the
# last non-empty one (ANSI colours and berth's "dist/ is missing" notice dropped)
error_line() {
  local l
  l=$(sed 's/\x1b\[[0-9;]*[A-Za-z]//g; s/\r/\n/g' "$1" | grep -v 'dist/ is missing' | grep -v '^[[:space:]]*$' |
      grep -m1 -iE 'error|fail|denied|refused|not found|cannot|unknown|invalid' || true)
  [ -n "$l" ] || l=$(sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$1" | grep -v 'dist/ is missing' | grep -v '^[[:space:]]*$' | tail -n1)
  printf '%s' "${l:-(no output)}" | tr '\t' ' ' | sed 's/^[[:space:]]*//' | cut -c1-240
}

# row NAME SECTION IMAGE TOOL STATUS ERROR CMD PREPARE [LOAD PSI]
# boot_testhost PIDVAR DIR LAYOUT NAME: boots a test host (bench/testhost.mts) in the
# background for one section, stores its pid in PIDVAR (finish() powers it off) and waits
# up to 90 s for it; L is its leader's pid, empty when it did not come up (log in
# $OUT/err/NAME-testhost.txt).
boot_testhost() {
  node --import tsx "$HERE/testhost.mts" "$2" "$3" > "$OUT/err/$4-testhost.txt" 2>&1 &
  local pid=$!
  printf -v "$1" '%s' "$pid"
  for _ in $(seq 900); do [ -s "$2/leader" ] || ! kill -0 "$pid" 2>/dev/null && break; sleep 0.1; done
  L=$(cat "$2/leader" 2>/dev/null)
}

# in_session CMD ARG...: runs CMD (measure, usually) in a subshell that first moved itself
# into a leaf cgroup of the test host (berth-bench, beside its init.scope), as a login
# session's shell would be. `nsenter -a` alone leaves berth in this VM's cgroup, above the
# test host's cgroup root, where no berth on a real host runs; there berth cannot see its
# own cgroup (/proc/self/cgroup "0::/../..") and skips what it does in it
# (runtime/nspawn/attach-warm.ts). One move, before hyperfine starts: the timed commands
# inherit the cgroup by fork and make no move of their own.
in_session() {
  (
    local cg m=/sys/fs/cgroup/unified
    [ -e /sys/fs/cgroup/cgroup.procs ] && m=/sys/fs/cgroup
    cg=$(sed -n 's/^0:://p' "/proc/$L/cgroup" 2>/dev/null)
    cg=$m${cg%/init.scope}/berth-bench
    { [ -n "$L" ] && mkdir -p "$cg" && echo "$BASHPID" > "$cg/cgroup.procs"; } 2>/dev/null ||
      bench_log "  (could not enter the test host's cgroup $cg: measured from this VM's)"
    "$@"
  )
}

row() {
  jq -nc --arg name "$1" --arg section "$2" --arg image "$3" --arg tool "$4" --arg status "$5" \
    --arg error "$6" --arg cmd "$7" --arg prepare "$8" --arg load "${9:-$(cut -d' ' -f1-3 /proc/loadavg)}" \
    --arg psi "${10:-}" \
    '{name:$name, section:$section, image:$image, tool:$tool, status:$status, error:$error,
      command:$cmd, prepare:$prepare, loadavg:$load, cpu_psi_pct:$psi}' >> "$ROWS"
}

# measure NAME SECTION IMAGE TOOL RUNS WARMUP CMD [PREPARE] [CLEANUP]
#   CMD / PREPARE / CLEANUP are run by hyperfine -N (no shell: use sh -c '...' for
#   pipes). One probe run first (after PREPARE): if it fails, the row is recorded
#   as "failed: <stderr line>" and not timed; otherwise hyperfine times it.
measure() {
  local name=$1 section=$2 image=$3 tool=$4 runs=$5 warm=$6 cmd=$7 prep=${8:-} clean=${9:-}
  local err=$OUT/err/$name.txt json=$OUT/json/$name.json rc
  bench_log "$name: $cmd"
  [ -z "$prep" ] || bash -c "exec $prep" > /dev/null 2>&1
  timeout "$PROBE_TIMEOUT" bash -c "exec $cmd" > "$err" 2>&1 < /dev/null
  rc=$?
  if [ $rc != 0 ]; then
    local msg; msg=$(error_line "$err")
    [ $rc = 124 ] && msg="timed out after ${PROBE_TIMEOUT}s; $msg"
    bench_log "  failed (exit $rc): $msg"
    row "$name" "$section" "$image" "$tool" failed "exit $rc: $msg" "$cmd" "$prep"
    [ -z "$clean" ] || bash -c "exec $clean" > /dev/null 2>&1
    return 1
  fi
  local args=(-N --style basic --runs "$runs" --warmup "$warm" --export-json "$json" --command-name "$name")
  [ -z "$prep" ] || args+=(--prepare "$prep")
  [ -z "$clean" ] || args+=(--cleanup "$clean")
  local p0 t0 psi
  p0=$(psi_total); t0=$(now_us)
  if hyperfine "${args[@]}" "$cmd" > "$OUT/err/$name.hyperfine.txt" 2>&1 < /dev/null; then
    psi=$(awk -v a="$p0" -v b="$(psi_total)" -v t0="$t0" -v t1="$(now_us)" 'BEGIN { if (t1 > t0) printf "%.0f", (b - a) * 100 / (t1 - t0) }')
    row "$name" "$section" "$image" "$tool" ok "" "$cmd" "$prep" "" "$psi"
    bench_log "  median $(jq -r '.results[0].median | . * 1000 | round / 1000' "$json") s  (load $(cut -d' ' -f1 /proc/loadavg), cpu psi ${psi}%)"
  else
    local msg; msg=$(error_line "$OUT/err/$name.hyperfine.txt")
    bench_log "  failed under hyperfine: $msg"
    row "$name" "$section" "$image" "$tool" failed "hyperfine: $msg" "$cmd" "$prep"
    return 1
  fi
}

join() { local sep=$1 out=$2; shift 2; for x in "$@"; do out+="$sep$x"; done; printf '%s' "$out"; }

# decompress command for a layer blob, from the manifest's media type
decompressor() { # LAYOUT LAYER-DIGEST-HEX
  local mt m
  m=$(bench_manifest_hex "$1")
  mt=$(jq -r --arg d "sha256:$2" '.layers[] | select(.digest == $d) | .mediaType' "$1/blobs/sha256/$m" | head -n1)
  case $mt in
    *+zstd|*.zstd) echo "zstd -dc" ;;
    *+gzip|*.gzip) echo "zcat" ;;
    *) echo "cat" ;;
  esac
}

# ------------------------------------------------------------------ setup
STARTED_REGISTRY=0
TESTHOST_PID=
SCALE_TESTHOST_PID=
finish() {
  [ -z "$TESTHOST_PID" ] || { kill -TERM "$TESTHOST_PID" 2>/dev/null; wait "$TESTHOST_PID" 2>/dev/null; }
  [ -z "${NET_TH_PID:-}" ] || { kill -TERM "$NET_TH_PID" 2>/dev/null; wait "$NET_TH_PID" 2>/dev/null; }
  [ -z "${PMNS:-}" ] || { ${PODMAN:-podman} rm -f pweb > /dev/null 2>&1; ip netns delete "$PMNS" 2>/dev/null; }
  [ -z "$SCALE_TESTHOST_PID" ] || { kill -TERM "$SCALE_TESTHOST_PID" 2>/dev/null; wait "$SCALE_TESTHOST_PID" 2>/dev/null; }
  rm -rf --one-file-system "$W/berth-root" "$W/oci" "$W/unpack" "$W/floor" "$W/start" "$W/net" "$W/scale"
  [ $STARTED_REGISTRY = 0 ] || "$HERE/registry.sh" stop
}
trap finish EXIT
trap 'exit 130' INT TERM

if [ "${BENCH_BUILD:-0}" = 1 ]; then
  bench_log "npm run build"
  npm run build > "$OUT/err/build.txt" 2>&1 || bench_log "npm run build failed: $(error_line "$OUT/err/build.txt")"
fi

if want pull; then
  "$HERE/make-images.sh" || bench_die "make-images.sh failed"
  if ! "$HERE/registry.sh" status > /dev/null 2>&1; then
    "$HERE/registry.sh" start || bench_die "registry.sh start failed"
    STARTED_REGISTRY=1
  else
    "$HERE/registry.sh" push || bench_die "registry.sh push failed"
  fi
fi

ver() { "$@" 2>&1 | head -n1; }
{
  echo "sections: ${sections[*]}   QUICK=${QUICK:-0}   runs per pull row: $RUNS_PULL (+$WARMUP_PULL warm-up, +1 probe)   startup runs: $RUNS_STARTUP"
  echo "date: $(date -u +%FT%TZ)   host: $(uname -r), $(nproc) CPUs, $(free -m | awk '/^Mem:/{print $2}') MiB, $(. /etc/os-release; echo "$PRETTY_NAME")"
  echo "bench dir: $BENCH_DIR on $(findmnt -n -o FSTYPE --target "$W") ($(findmnt -n -o SOURCE --target "$W"))   registry: http://$REG (docker-registry $(docker-registry --version 2>&1 | awk '{print $NF}'))"
  echo "berth: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') (HEAD; the work tree may have uncommitted changes), $( [ -f "$ROOT/dist/main.cjs" ] && echo "dist/main.cjs (built)" || echo "no dist/: bin/berth runs the TypeScript sources through tsx")"
  echo "tools: node $(node --version), $(ver podman --version), $(ver skopeo --version), $(ver umoci --version), $(ver hyperfine --version), $(ver gzip --version), $(ver tar --version)"
  echo "NODE_EXTRA_CA_CERTS: ${NODE_EXTRA_CA_CERTS:-unset} (Node parses it at start-up, ~90 ms here; bin/berth defers it to berth's first TLS connection, and the node -e 0 rows run without it)"
  echo "loadavg at start: $(cat /proc/loadavg)"
} > "$OUT/env.txt"
cat "$OUT/env.txt" >&2

# ------------------------------------------------------------------ pull
if want pull; then
  bench_log "== pull (results: $OUT)"
  $PODMAN rmi -a -f > /dev/null 2>&1
  rm -rf --one-file-system "$W/berth-root" "$W/oci" "$W/unpack" "$W/floor"
  mkdir -p "$W/oci" "$W/unpack" "$W/floor"
  for img in ${IMAGES:-${BENCH_IMAGES[*]}}; do
    ref=$REG/$img:latest lay=$BENCH_DIR/images/$img
    # Like podman's row (its prepare is `rmi`: its store stays), berth's store stays and only
    # the image goes: rmi, then image prune removes its blobs and snapshots. A pull into a
    # store that does not exist yet also creates it and probes what the file system can mount
    # (~30 ms here): that is the next row, kept apart.
    rm -rf --one-file-system "$W/berth-root"
    $BERTH image prune > /dev/null 2>&1
    measure "pull-berth-$img" pull "$img" berth "$RUNS_PULL" "$WARMUP_PULL" \
      "$BERTH pull --tls-verify=false $ref" "sh -c '$BERTH rmi $ref > /dev/null 2>&1; $BERTH image prune > /dev/null'"
    measure "pull-berth-newstore-$img" pull "$img" berth-newstore "$RUNS_PULL" "$WARMUP_PULL" \
      "$BERTH pull --tls-verify=false $ref" "rm -rf --one-file-system $W/berth-root"
    # with 3+ cores big layers unpack in a worker thread: the same pull with the worker
    # forced on and off (only debian has a layer big enough for it)
    if [ "$img" = debian ]; then
      for wk in 1 0; do
        measure "pull-berth-worker$wk-$img" pull "$img" "berth-worker$wk" "$RUNS_PULL" "$WARMUP_PULL" \
          "env BERTH_UNPACK_WORKER=$wk $BERTH pull --tls-verify=false $ref" "rm -rf --one-file-system $W/berth-root"
      done
    fi
    # the other snapshot format (plain directories on ext4), to keep the default honest
    measure "pull-berth-dir-$img" pull "$img" berth-dir "$RUNS_PULL" "$WARMUP_PULL" \
      "$BERTH --snapshot-format dir pull --tls-verify=false $ref" "rm -rf --one-file-system $W/berth-root"
    measure "pull-skopeo-$img" pull "$img" skopeo "$RUNS_PULL" "$WARMUP_PULL" \
      "skopeo copy --src-tls-verify=false docker://$ref oci:$W/oci/$img:latest" "rm -rf $W/oci/$img"
    measure "pull-podman-$img" pull "$img" podman "$RUNS_PULL" "$WARMUP_PULL" \
      "$PODMAN pull --tls-verify=false $ref" "$PODMAN rmi -f -i $ref" "$PODMAN rmi -f -i $ref"
    measure "pull-skopeo+umoci-$img" pull "$img" skopeo+umoci "$RUNS_PULL" "$WARMUP_PULL" \
      "sh -c 'skopeo copy -q --src-tls-verify=false docker://$ref oci:$W/oci/$img:latest && umoci raw unpack --image $W/oci/$img:latest $W/unpack/$img'" \
      "rm -rf $W/oci/$img $W/unpack/$img" "rm -rf $W/oci/$img $W/unpack/$img"
    # floors: the same layer blobs, from the local OCI layout (page cache warm)
    zc=() tx=() ig=()
    while read -r blob; do
      dc=$(decompressor "$lay" "${blob##*/}")
      zc+=("$dc $blob")
      tx+=("$dc $blob | tar --numeric-owner -xpf - -C $W/floor/$img")
      # issue 11's floor: ISA-L igzip for gzip layers (zstd/none layers: as above)
      [ "$dc" = zcat ] && ig+=("igzip -dc < $blob") || ig+=("$dc $blob")
    done < <(bench_layer_paths "$lay")
    measure "floor-zcat-$img" pull "$img" floor-zcat "$RUNS_PULL" "$WARMUP_PULL" \
      "sh -c '{ $(join '; ' "${zc[@]}"); } > /dev/null'"
    measure "floor-igzip-$img" pull "$img" floor-igzip "$RUNS_PULL" "$WARMUP_PULL" \
      "sh -c '{ $(join '; ' "${ig[@]}"); } > /dev/null'"
    measure "floor-tar-$img" pull "$img" floor-tar "$RUNS_PULL" "$WARMUP_PULL" \
      "sh -c '$(join ' && ' "${tx[@]}")'" "sh -c 'rm -rf $W/floor/$img && mkdir -p $W/floor/$img'" "rm -rf $W/floor/$img"
  done
fi

# per-stage shares of berth's unpack (bench/stages.mts: inflate, digest, validate, write)
if want pull; then
  bench_log "== stages"
  RUNS=${RUNS_STAGES:-$([ "${QUICK:-0}" = 1 ] && echo 3 || echo 5)} node --import tsx "$HERE/stages.mts" "$BENCH_DIR" ${IMAGES:-${BENCH_IMAGES[*]}} \
    > "$OUT/stages.jsonl" 2> "$OUT/stages.txt" || bench_log "stages.mts failed: $(error_line "$OUT/stages.txt")"
fi

# ------------------------------------------------------------------ startup
if want pull || want startup; then
  bench_log "== startup"
  measure startup-node startup - node "$RUNS_STARTUP" "$WARMUP_STARTUP" "env -u NODE_EXTRA_CA_CERTS node -e 0"
  measure startup-berth-help startup - berth "$RUNS_STARTUP" "$WARMUP_STARTUP" "${BERTH_BIN:-./bin/berth} --help"
fi

# ------------------------------------------------------------------ start
if want start; then
  # shellcheck source=bench/start.sh
  . "$HERE/start.sh"
fi

if want net; then
  # shellcheck source=bench/net.sh
  . "$HERE/net.sh"
fi

# ------------------------------------------------------------------ scale
if want scale; then
  # shellcheck source=bench/scale.sh
  . "$HERE/scale.sh"
fi

if want rootless; then
  # shellcheck source=bench/rootless.sh
  . "$HERE/rootless.sh"
fi

echo "loadavg at end: $(cat /proc/loadavg)   duration: $(( $(date +%s) - T_START )) s" >> "$OUT/env.txt"
node "$HERE/report.mjs" "$OUT" > "$OUT/report.md" || bench_die "report.mjs failed"
cat "$OUT/report.md"
bench_log "report: $OUT/report.md"
