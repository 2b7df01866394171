# bench/scale.sh - the `scale` section of bench/run.sh (sourced by it, not executed).
# shellcheck shell=bash
#
# berth in a test host (systemd as PID 1 in an nspawn container, bench/testhost.mts;
# driven with `nsenter -t LEADER -a`), podman on this VM itself: podman cannot run in the
# test host (its cgroup setup needs writable v1 hierarchies), and berth -d needs systemd
# as PID 1, which this VM lacks. The report says so next to every row.
#
#   scale-runrm-{berth,podman}     run --rm --network=none busybox true (both on this VM,
#                                  berth in the foreground as without systemd)
#   scale-rund-{berth,podman}      run -d … sleep, until active (podman: --init; both
#                                  --network=none: BERTH_RUN_OPTS, PODMAN_RUN_OPTS)
#   scale-run100-{berth,podman}    SCALE_N (100) `run -d` at once (bench/storm.sh: one loop, &)
#   scale-rm100-{berth,podman}     SCALE_N `rm -f` of running ones at once (podman: -t 0,
#                                  as berth rm -f kills at once)
#   scale-ps-a-10-*, scale-ps-a-200-*, scale-ps-200-*
#                                  `ps -a` with 10 machines (5 running), `ps -a` and `ps`
#                                  with 200 (100 running)
#   scale-mem.jsonl                RSS and PSS per running machine: systemd-nspawn (berth's
#                                  supervisor) next to conmon (podman's), averaged over 100
#
# env: RUNS_SCALE (storm rows, default 2; QUICK=1: 1), RUNS_SCALE_FAST (other rows, 10;
#      QUICK: 5), SCALE_N (100), SCALE_M (200; half of them running)

bench_log "== scale"
bench_ensure runc:runc
SC=$W/scale
rm -rf --one-file-system "$SC"
mkdir -p "$SC"
if [ "${QUICK:-0}" = 1 ]; then RUNS_SCALE=${RUNS_SCALE:-1} RUNS_SCALE_FAST=${RUNS_SCALE_FAST:-5}
else RUNS_SCALE=${RUNS_SCALE:-2} RUNS_SCALE_FAST=${RUNS_SCALE_FAST:-10}; fi
SN=${SCALE_N:-100}
SM=${SCALE_M:-200}
STORM=$HERE/storm.sh
SMEM=$OUT/scale-mem.jsonl
: > "$SMEM"
smem_row() { jq -nc --arg what "$1" --arg rss "$2" --arg pss "$3" --arg n "$4" '{what:$what, rss_kb:$rss, pss_kb:$pss, n:$n}' >> "$SMEM"; }
PODMAN_RUN_OPTS=${PODMAN_RUN_OPTS:-"--network=none --runtime=runc --ulimit nofile=20000:20000 --ulimit nproc=32768:32768"}
# berth's -d rows and storms run with the same network mode as podman's (--network=none):
# until 2026-12-01 20:00 they used berth's default zone against podman's none.
BERTH_RUN_OPTS=${BERTH_RUN_OPTS:-"--network=none"}
# average Rss/Pss (kB) of the pids on stdin
rss_pss() { local p r=0 s=0 n=0; while read -r p; do [ -r "/proc/$p/smaps_rollup" ] || continue
  read -r a b < <(awk '/^Rss:/{r=$2} /^Pss:/{s=$2} END{print r, s}' "/proc/$p/smaps_rollup"); r=$((r + a)) s=$((s + b)) n=$((n + 1)); done
  [ $n -gt 0 ] && echo "$((r / n)) $((s / n)) $n" || echo "? ? 0"; }

lay=$BENCH_DIR/images/busybox
[ -d "$lay" ] || "$HERE/make-images.sh" busybox || bench_log "make-images.sh busybox failed"
$BERTH image import "$lay" bench-busybox:latest > "$OUT/err/scale-import.txt" 2>&1 ||
  bench_log "berth image import failed: $(error_line "$OUT/err/scale-import.txt")"
if ! $PODMAN image exists localhost/bench-busybox:latest 2>/dev/null; then
  pid=$($PODMAN pull -q "oci:$lay:latest" 2> "$OUT/err/scale-podman-pull.txt" | tail -n1)
  [ -z "$pid" ] || $PODMAN tag "$pid" localhost/bench-busybox:latest
fi
$PODMAN rm -a -f -t 0 > /dev/null 2>&1

# ---- attached, both on this VM
measure scale-runrm-berth scale busybox berth "$RUNS_SCALE_FAST" 2 "$BERTH run --rm --network=none bench-busybox true"
measure scale-runrm-podman scale busybox podman "$RUNS_SCALE_FAST" 2 "$PODMAN run --rm $PODMAN_RUN_OPTS localhost/bench-busybox true"

# ---- berth in a test host, podman here
bench_log "booting a test host for the scale rows"
boot_testhost SCALE_TESTHOST_PID "$SC/testhost" "$lay" scale
if [ -z "$L" ]; then
  bench_log "test host did not come up: $(error_line "$OUT/err/scale-testhost.txt")"
  row scale-rund-berth scale busybox berth failed "test host did not boot: $(error_line "$OUT/err/scale-testhost.txt")" "" ""
else
  IN="nsenter -t $L -a"
  BB=$ROOT/bin/berth
  BIN="$IN $BB"
  in_session measure scale-rund-berth scale busybox berth "$RUNS_SCALE_FAST" 1 "$BIN run -d --name sd1 $BERTH_RUN_OPTS bench-busybox sleep 100000" "$BIN rm -f sd1"
  $BIN rm -f sd1 > /dev/null 2>&1
  measure scale-rund-podman scale busybox podman "$RUNS_SCALE_FAST" 1 \
    "$PODMAN run -d --init --name pd1 $PODMAN_RUN_OPTS localhost/bench-busybox sleep 100000" "$PODMAN rm -f -t 0 pd1"
  $PODMAN rm -f -t 0 pd1 > /dev/null 2>&1

  # storms: SN at once, on an otherwise empty host (the prepare step is the other storm)
  B_RUN="$IN $STORM $SN r $BB run -d --name {} $BERTH_RUN_OPTS bench-busybox sleep 100000"
  B_RM="$IN $STORM $SN r $BB rm -f {}"
  P_RUN="$STORM $SN pr $PODMAN run -d --init --name {} $PODMAN_RUN_OPTS localhost/bench-busybox sleep 100000"
  P_RM="$STORM $SN pr $PODMAN rm -f -t 0 {}"
  in_session measure scale-run100-berth scale busybox berth "$RUNS_SCALE" 0 "$B_RUN" "$B_RM"
  # $SN running now: resident memory per machine (pids are the test host's: read inside)
  AVG='r=0 s=0 n=0; for p in $PIDS; do set -- $(awk "/^Rss:/{r=\$2} /^Pss:/{s=\$2} END{print r, s}" /proc/$p/smaps_rollup 2>/dev/null); [ $# = 2 ] || continue; r=$((r+$1)) s=$((s+$2)) n=$((n+1)); done; [ $n -gt 0 ] && echo $((r/n)) $((s/n)) $n || echo "? ? 0"'
  UNITS='systemctl list-units --plain --no-legend --state=running "systemd-nspawn@*" | cut -d" " -f1'
  read -r rss pss n < <($IN sh -c "PIDS=\$(for u in \$($UNITS); do systemctl show -p MainPID --value \$u; done); $AVG")
  smem_row "systemd-nspawn, berth's supervisor (one per running machine)" "$rss" "$pss" "$n"
  read -r rss pss n < <($IN sh -c "PIDS=\$(for u in \$($UNITS); do cat /sys/fs/cgroup/unified\$(systemctl show -p ControlGroup --value \$u)/payload/cgroup.procs; done); $AVG")
  smem_row "payload: forwarding init + sleep (per process, berth)" "$rss" "$pss" "$n"
  left=$($IN sh -c 'ps -e -o comm= | grep -c -E "^(node|berth)$"')
  smem_row "berth/node processes left in the test host with $SN running" "$left" "-" "-"
  in_session measure scale-rm100-berth scale busybox berth "$RUNS_SCALE" 0 "$B_RM" "$B_RUN"
  $B_RM > /dev/null 2>&1
  measure scale-run100-podman scale busybox podman "$RUNS_SCALE" 0 "$P_RUN" "$P_RM"
  read -r rss pss n < <($PODMAN ps -q --no-trunc | xargs -r -n1 $PODMAN inspect -f '{{.State.ConmonPid}}' | rss_pss)
  smem_row "conmon, podman's supervisor (one per running container)" "$rss" "$pss" "$n"
  measure scale-rm100-podman scale busybox podman "$RUNS_SCALE" 0 "$P_RM" "$P_RUN"
  $P_RM > /dev/null 2>&1

  # ps: 10 machines (5 running), then 200 (100 running); the same for podman. Each pair
  # of ps rows first waits for the storms before it to drain (settle): measured right after
  # a 190-create storm at load ~45, berth's `ps -a` took 0.14 s, and 0.11 s once it fell.
  # Quiet means CPU pressure over the last 10 s (/proc/pressure/cpu "some avg10") below 5%:
  # the 1-minute load average lags by minutes.
  settle() {
    local t0=$SECONDS
    while [ $((SECONDS - t0)) -lt "${SETTLE_MAX_S:-90}" ] && awk -F'avg10=' '/^some/ { split($2, a, " "); exit !(a[1] > 5) }' /proc/pressure/cpu 2>/dev/null; do sleep 2; done
    bench_log "settled after $((SECONDS - t0)) s (cpu pressure: $(awk '/^some/ {print $2}' /proc/pressure/cpu 2>/dev/null), load $(cut -d' ' -f1 /proc/loadavg))"
  }
  $IN "$STORM" 10 m "$BB" create --name {} bench-busybox sleep 100000 2> "$OUT/err/scale-setup.txt"
  $IN "$STORM" 5 m "$BB" start {} 2>> "$OUT/err/scale-setup.txt"
  "$STORM" 10 pm $PODMAN create --init --name {} $PODMAN_RUN_OPTS localhost/bench-busybox sleep 100000 2>> "$OUT/err/scale-setup.txt"
  "$STORM" 5 pm $PODMAN start {} 2>> "$OUT/err/scale-setup.txt"
  settle
  in_session measure scale-ps-a-10-berth scale busybox berth "$RUNS_SCALE_FAST" 2 "$BIN ps -a"
  measure scale-ps-a-10-podman scale busybox podman "$RUNS_SCALE_FAST" 2 "$PODMAN ps -a"
  more=$((SM - 10)) run_more=$((SM / 2 - 5))
  $IN "$STORM" "$more" n "$BB" create --name {} bench-busybox sleep 100000 2>> "$OUT/err/scale-setup.txt"
  $IN "$STORM" "$run_more" n "$BB" start {} 2>> "$OUT/err/scale-setup.txt"
  "$STORM" "$more" pn $PODMAN create --init --name {} $PODMAN_RUN_OPTS localhost/bench-busybox sleep 100000 2>> "$OUT/err/scale-setup.txt"
  "$STORM" "$run_more" pn $PODMAN start {} 2>> "$OUT/err/scale-setup.txt"
  bench_log "berth: $($BIN ps -a -q | wc -l) machines, $($BIN ps -q | wc -l) running; podman: $($PODMAN ps -a -q | wc -l) containers, $($PODMAN ps -q | wc -l) running"
  settle
  in_session measure scale-ps-a-200-berth scale busybox berth "$RUNS_SCALE_FAST" 2 "$BIN ps -a"
  measure scale-ps-a-200-podman scale busybox podman "$RUNS_SCALE_FAST" 2 "$PODMAN ps -a"
  in_session measure scale-ps-200-berth scale busybox berth "$RUNS_SCALE_FAST" 2 "$BIN ps"
  measure scale-ps-200-podman scale busybox podman "$RUNS_SCALE_FAST" 2 "$PODMAN ps"
  $PODMAN rm -a -f -t 0 > /dev/null 2>&1
  kill -TERM "$SCALE_TESTHOST_PID" 2>/dev/null
  wait "$SCALE_TESTHOST_PID" 2>/dev/null
  SCALE_TESTHOST_PID=
fi
