# bench/net.sh - the `net` section of bench/run.sh (sourced by it, not executed).
# shellcheck shell=bash
#
# Everything runs inside one test host (bench/testhost.mts: systemd as PID 1, its own
# network namespace), so every packet stays inside it and no bridge or rule touches this VM:
#   net-tput-*       HTTP throughput of one 512 MiB download (curl, median of 5, MB/s) from
#                    busybox httpd in a machine: through berth's published port on 127.0.0.1,
#                    directly to the machine's zone address, and through `podman run -p` on
#                    127.0.0.1 (rootful podman, default bridge network)
#   net-start-*      `berth run --rm busybox true` with default networking (zone berth) and
#                    with --network=none, vs `podman run --rm` with its default bridge and with
#                    --network=none. berth runs as a transient unit (systemd-run --wait, whose own
#                    cost is the net-start-floor row) because a nested nspawn must run in the test
#                    host's cgroups. podman cannot run in a test host (runc needs writable v1
#                    cgroups, crun refuses hybrid ones), so it runs on this VM as in the `start`
#                    section, but inside a network namespace the bench makes (nsenter --net, so
#                    its bridge, iptables rules and published port never touch this VM's network).
bench_log "== net"
bench_ensure curl:curl podman:podman runc:runc jq:jq
NT=$W/net
rm -rf --one-file-system "$NT"
mkdir -p "$NT"
lay=$BENCH_DIR/images/busybox
[ -d "$lay" ] || "$HERE/make-images.sh" busybox || bench_log "make-images.sh busybox failed"
NETJ=$OUT/net.jsonl
: > "$NETJ"
net_row() { jq -nc --arg name "$1" --arg value "$2" --arg unit "$3" --arg note "$4" '{name:$name, value:$value, unit:$unit, note:$note}' >> "$NETJ"; }

boot_testhost NET_TH_PID "$NT/testhost" "$lay" net
if [ -z "$L" ]; then
  bench_log "test host did not come up: $(error_line "$OUT/err/net-testhost.txt")"
  row net-start-berth net busybox berth failed "test host did not boot" "" ""
else
  IN="nsenter -t $L -a"
  BIN="$IN $ROOT/bin/berth"
  RUNU="$IN systemd-run --pipe --wait --collect --quiet --service-type=exec"
  PM_OPTS="--runtime=runc --ulimit nofile=20000:20000 --ulimit nproc=32768:32768"
  PMNS=berth-bench-pm-$$
  ip netns add $PMNS && ip -n $PMNS link set lo up
  PMN="nsenter --net=/run/netns/$PMNS"
  pid=$($PODMAN pull -q "oci:$lay:latest" 2> "$OUT/err/net-podman-pull.txt" | tail -n1)
  [ -z "$pid" ] || $PODMAN tag "$pid" localhost/bench-busybox:latest

  # median MB/s of 5 downloads: tput URL [NAMESPACE-ENTRY]
  tput() {
    local i
    for i in 1 2 3 4 5; do ${2:-$IN} curl -sf -m 60 -o /dev/null -w '%{speed_download}\n' "$1" || echo 0; done |
      sort -n | sed -n 3p | awk '{printf "%.0f", $1 / 1e6}'
  }
  WWW="mkdir -p /www && dd if=/dev/zero of=/www/big bs=1M count=512 2>/dev/null && exec httpd -f -p 80 -h /www"
  $BIN run -d --name nweb -p 18080:80 --tmpfs /www:size=600m bench-busybox sh -c "$WWW" > "$OUT/err/net-berth-web.txt" 2>&1
  addr=$($BIN status --json nweb 2>/dev/null | jq -r '.network.address // empty' | cut -d/ -f1)
  for _ in $(seq 100); do $IN curl -sf -m 1 -r 0-0 -o /dev/null "http://127.0.0.1:18080/big" && break; sleep 0.2; done
  if [ -n "$addr" ]; then
    v=$(tput "http://127.0.0.1:18080/big"); net_row net-tput-berth-localhost "$v" MB/s "berth -p 18080:80, curl http://127.0.0.1:18080 (DNAT in output + route_localnet + masquerade)"
    v=$(tput "http://$addr/big"); net_row net-tput-berth-direct "$v" MB/s "curl http://$addr (the machine's zone address, no NAT)"
  else
    net_row net-tput-berth-localhost 0 MB/s "failed: $(error_line "$OUT/err/net-berth-web.txt")"
  fi
  $BIN rm -f nweb > /dev/null 2>&1
  $PMN $PODMAN run -d --name pweb -p 18081:80 $PM_OPTS --tmpfs /www:size=600m localhost/bench-busybox sh -c "$WWW" > "$OUT/err/net-podman-web.txt" 2>&1
  for _ in $(seq 100); do $PMN curl -sf -m 1 -r 0-0 -o /dev/null "http://127.0.0.1:18081/big" && break; sleep 0.2; done
  v=$(tput "http://127.0.0.1:18081/big" "$PMN")
  if [ "$v" != 0 ]; then net_row net-tput-podman-localhost "$v" MB/s "podman run -p 18081:80, curl http://127.0.0.1:18081 (on this VM, in a namespace of the bench's)"
  else net_row net-tput-podman-localhost 0 MB/s "failed: $(error_line "$OUT/err/net-podman-web.txt")"; fi
  $PODMAN rm -f pweb > /dev/null 2>&1

  measure net-start-floor net - systemd-run "$RUNS_START" 2 "$RUNU true"
  measure net-start-berth net busybox berth "$RUNS_START" 2 "$RUNU $ROOT/bin/berth run --rm bench-busybox true"
  measure net-start-berth-none net busybox berth-none "$RUNS_START" 2 "$RUNU $ROOT/bin/berth run --rm --network=none bench-busybox true"
  measure net-start-podman net busybox podman "$RUNS_START" 2 "$PMN $PODMAN run --rm $PM_OPTS localhost/bench-busybox true"
  measure net-start-podman-none net busybox podman-none "$RUNS_START" 2 "$PMN $PODMAN run --rm --network=none $PM_OPTS localhost/bench-busybox true"
  ip netns delete $PMNS
  kill -TERM $NET_TH_PID 2>/dev/null; wait $NET_TH_PID 2>/dev/null
fi
