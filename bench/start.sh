# bench/start.sh - the `start` section of bench/run.sh (sourced by it, not executed).
# shellcheck shell=bash
#
# 1. On this host (PID 1 is not systemd, so berth runs the container in the foreground with
#    `--keep-unit --register=no`; podman uses conmon + runc):
#      start-berth-IMG    berth run --rm IMG true
#      start-podman-IMG   podman run --rm --network=none --runtime=runc IMG true
#      start-nspawn-IMG   systemd-nspawn --keep-unit --register=no -q -D ROOTFS /bin/true
#                         (ROOTFS: the same image unpacked by umoci; nspawn's floor)
#      start-nspawn-noseccomp-IMG  the same with SYSTEMD_SECCOMP=0: nspawn without its seccomp
#                         filter compile, the way berth runs it (berth's PID 1 loads the same
#                         programs from berth's cache, native/seccomp.c)
#    plus start-node (`node -e 0`) so the report can split berth's time into Node.js start,
#    berth's own work (image lookup, settings, rootfs helper) and nspawn.
#    Isolation: berth runs with a private user namespace and network namespace by default;
#    podman here runs rootful without a user namespace (its default), network none.
# 2. In a test host (bench/testhost.mts: systemd as PID 1 in an nspawn container sharing
#    /usr), driven with `nsenter -t LEADER -a` — `berth run -d` needs systemd as PID 1:
#      start-d-berth-busybox  berth run -d --network=none (returns once the unit is active; the
#                             network mode of podman's row)
#      stop-berth-busybox     berth stop
#    and on this host for comparison: podman run -d --init / podman stop (--init so that
#    SIGTERM reaches `sleep`, as berth's forwarding init does).
#    Resident memory per running container (mem.jsonl): berth/node processes left in the
#    test host after `berth run -d` (target 0) and the RSS of the per-container supervisor
#    (systemd-nspawn; podman's is conmon).

bench_log "== start"
bench_ensure runc:runc umoci:umoci
ST=$W/start
rm -rf --one-file-system "$ST"
mkdir -p "$ST"
MEM=$OUT/mem.jsonl
: > "$MEM"
mem_row() { jq -nc --arg what "$1" --arg kb "$2" --arg note "$3" '{what:$what, kb:$kb, note:$note}' >> "$MEM"; }

PODMAN_RUN_OPTS="--network=none --runtime=runc --ulimit nofile=20000:20000 --ulimit nproc=32768:32768"
START_IMAGES=${START_IMAGES:-busybox debian}
for img in $START_IMAGES; do
  lay=$BENCH_DIR/images/$img
  [ -d "$lay" ] || "$HERE/make-images.sh" "$img" || { bench_log "make-images.sh $img failed"; continue; }
  $BERTH image import "$lay" "bench-$img:latest" > "$OUT/err/start-import-$img.txt" 2>&1 ||
    bench_log "berth image import $img failed: $(error_line "$OUT/err/start-import-$img.txt")"
  pid=$($PODMAN pull -q "oci:$lay:latest" 2> "$OUT/err/start-podman-pull-$img.txt" | tail -n1)
  [ -z "$pid" ] || $PODMAN tag "$pid" "localhost/bench-$img:latest"
  umoci raw unpack --image "$lay:latest" "$ST/rootfs-$img" > "$OUT/err/start-umoci-$img.txt" 2>&1
  mkdir -p "$ST/rootfs-$img/usr"
  measure "start-berth-$img" start "$img" berth "$RUNS_START" 2 "$BERTH run --rm bench-$img true"
  measure "start-podman-$img" start "$img" podman "$RUNS_START" 2 "$PODMAN run --rm $PODMAN_RUN_OPTS localhost/bench-$img true"
  measure "start-nspawn-$img" start "$img" nspawn "$RUNS_START" 2 \
    "systemd-nspawn --keep-unit --register=no -q -D $ST/rootfs-$img /bin/true"
  # Diagnostic only, never what berth runs: the same nspawn with its seccomp filter off. The
  # difference is the time nspawn spends compiling its system-call filter with libseccomp
  # (~60 ms of user CPU per start here), the largest single step of every berth start.
  measure "start-nspawn-noseccomp-$img" start "$img" nspawn-noseccomp "$RUNS_START" 2 \
    "env SYSTEMD_SECCOMP=0 systemd-nspawn --keep-unit --register=no -q -D $ST/rootfs-$img /bin/true"
done
measure start-node start - node "$RUNS_START" 2 "env -u NODE_EXTRA_CA_CERTS node -e 0"

# ---- detached, in a test host
if [ -d "$BENCH_DIR/images/busybox" ]; then
  bench_log "booting a test host for the detached rows"
  boot_testhost TESTHOST_PID "$ST/testhost" "$BENCH_DIR/images/busybox" start
  if [ -n "$L" ]; then
    IN="nsenter -t $L -a"
    BIN="$IN $ROOT/bin/berth"
    in_session measure start-d-berth-busybox start busybox berth-d "$RUNS_START" 1 \
      "$BIN run -d --network=none --name bd bench-busybox sleep 1000" "$BIN rm -f bd"
    in_session measure stop-berth-busybox start busybox berth-stop "$RUNS_START" 1 "$BIN stop bd" "$BIN start bd" "$BIN rm -f bd"
    # resident memory while one container runs
    $BIN rm -f bd > /dev/null 2>&1
    $BIN run -d --name mem1 bench-busybox sleep 1000 > /dev/null 2>&1
    nodes=$($IN sh -c 'ps -e -o comm= | grep -c -E "^(node|berth)$"')
    mp=$($IN systemctl show -p MainPID --value systemd-nspawn@mem1)
    rss=$($IN ps -o rss= -p "$mp" | tr -d ' ')
    cg=$($IN systemctl show -p ControlGroup --value systemd-nspawn@mem1)
    payload=$($IN sh -c "for p in \$(cat /sys/fs/cgroup/unified$cg/payload/cgroup.procs); do ps -o rss= -p \$p; done" | awk '{s+=$1} END {print s+0}')
    mem_row "berth/node processes left in the test host after berth run -d" "$nodes" "count, not kB: target 0"
    mem_row "systemd-nspawn supervisor of the running container (RSS)" "$rss" "per container, the analogue of conmon"
    mem_row "payload: forwarding init + sleep (RSS)" "$payload" "the container itself, same for every runtime"
    $BIN rm -f mem1 > /dev/null 2>&1
  else
    bench_log "test host did not come up: $(error_line "$OUT/err/start-testhost.txt")"
    row start-d-berth-busybox start busybox berth-d failed "test host did not boot: $(error_line "$OUT/err/start-testhost.txt")" "" ""
  fi
  measure start-d-podman-busybox start busybox podman-d "$RUNS_START" 1 \
    "$PODMAN run -d --init --name pd $PODMAN_RUN_OPTS localhost/bench-busybox sleep 1000" "$PODMAN rm -f pd"
  measure stop-podman-busybox start busybox podman-stop "$RUNS_START" 1 "$PODMAN stop pd" "$PODMAN start pd" "$PODMAN rm -f pd"
  $PODMAN rm -f pd > /dev/null 2>&1
  $PODMAN run -d --init --name pdm $PODMAN_RUN_OPTS localhost/bench-busybox sleep 1000 > /dev/null 2>&1
  cpid=$($PODMAN inspect -f '{{.State.ConmonPid}}' pdm 2>/dev/null)
  [ -z "$cpid" ] || mem_row "conmon supervisor of podman run -d (RSS)" "$(ps -o rss= -p "$cpid" | tr -d ' ')" "per container"
  $PODMAN rm -f pdm > /dev/null 2>&1
fi
