# bench/rootless.sh - sourced by run.sh for the `rootless` section (not in the default
# list: it boots a test host and creates users; about 2-3 min).
# `berth run --rm busybox true` as an unprivileged user (systemd user manager with
# lingering, in a test host, since this VM's PID 1 is not systemd) vs
# `podman run --rm` rootless as a user with subordinate IDs on this VM (podman cannot run
# in the test host), same busybox OCI layout, one run each after one warm-up, ratio printed
# (issue 10 target: <= 0.75x podman). Where podman rootless cannot run, the row says why.
# The berth side is bin/berth as the user (the CLI's user mode comes from the manager
# branch); until that is merged the row fails with berth's own message.
bench_log "== rootless"
RL=$W/rootless
mkdir -p "$RL"
"$HERE/make-images.sh" || bench_die "make-images.sh failed"
BB=$BENCH_DIR/images/busybox
RUNS_RL=${RUNS_ROOTLESS:-5}

# --- podman rootless on this VM, as user berthbench (created once, with a subuid range)
PU=berthbench
if ! id "$PU" > /dev/null 2>&1; then
  touch /etc/subuid /etc/subgid
  useradd -m "$PU" > /dev/null 2>&1 || bench_log "useradd $PU failed"
fi
grep -q "^$PU:" /etc/subuid || usermod --add-subuids 300000-365535 --add-subgids 300000-365535 "$PU"
PH=$(getent passwd "$PU" | cut -d: -f6)
PODMAN_U=(runuser -u "$PU" -- env HOME="$PH" XDG_RUNTIME_DIR="$PH/.run" podman --root "$PH/x" --runroot "$PH/y" --storage-driver=overlay --cgroup-manager=cgroupfs --events-backend=file)
runuser -u "$PU" -- mkdir -p "$PH/.run" && chmod 700 "$PH/.run"
cp -a "$BB" "$RL/busybox-oci" && chown -R "$PU:" "$RL/busybox-oci" && chmod 755 "$RL"
if "${PODMAN_U[@]}" pull -q "oci:$RL/busybox-oci:latest" > "$OUT/err/rootless-podman-pull.txt" 2>&1; then
  measure rootless-podman-run-rm rootless busybox podman "$RUNS_RL" 1 \
    "$(printf '%q ' "${PODMAN_U[@]}") run --rm --network=none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 localhost/busybox-oci:latest true"
else
  msg=$(error_line "$OUT/err/rootless-podman-pull.txt")
  bench_log "podman rootless cannot run here: $msg"
  row rootless-podman-run-rm rootless busybox podman failed "podman rootless: $msg" "podman pull oci:" ""
fi

# --- berth as tuser in a test host (bench/testhost.mts boots it; the user is made here)
boot_testhost RL_TH_PID "$RL/th" "$BB" rootless
if [ -n "$L" ]; then
  NS=(nsenter -t "$L" -a)
  "${NS[@]}" sh -c 'touch /etc/subuid /etc/subgid; id tuser >/dev/null 2>&1 || useradd -m tuser; loginctl enable-linger tuser' > /dev/null 2>&1
  for _ in $(seq 100); do "${NS[@]}" test -S /run/user/1000/bus && break; sleep 0.1; done
  ASU=("${NS[@]}" runuser -u tuser -- env HOME=/home/tuser XDG_RUNTIME_DIR=/run/user/1000 DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus)
  if "${ASU[@]}" "$ROOT/bin/berth" image import "$BB" bench-busybox:latest > "$OUT/err/rootless-berth-import.txt" 2>&1; then
    measure rootless-berth-run-rm rootless busybox berth "$RUNS_RL" 1 \
      "$(printf '%q ' "${ASU[@]}") $ROOT/bin/berth run --rm --network=none bench-busybox:latest true"
  else
    row rootless-berth-run-rm rootless busybox berth failed "berth as a user: $(error_line "$OUT/err/rootless-berth-import.txt")" "berth image import" ""
  fi
  kill -TERM "$RL_TH_PID" 2>/dev/null; wait "$RL_TH_PID" 2>/dev/null
else
  row rootless-berth-run-rm rootless busybox berth failed "test host did not boot: $(error_line "$OUT/err/rootless-testhost.txt")" "" ""
fi
b=$(jq -r '.results[0].median' "$OUT/json/rootless-berth-run-rm.json" 2>/dev/null)
p=$(jq -r '.results[0].median' "$OUT/json/rootless-podman-run-rm.json" 2>/dev/null)
if [ -n "$b" ] && [ -n "$p" ] && [ "$b" != null ] && [ "$p" != null ]; then
  bench_log "rootless run --rm: berth $(printf '%.3f' "$b") s, podman $(printf '%.3f' "$p") s, ratio $(awk -v b="$b" -v p="$p" 'BEGIN { printf "%.2f", b / p }')x (target <= 0.75x)"
else
  bench_log "rootless run --rm: no ratio (berth: ${b:-failed}, podman: ${p:-failed}); see the rows"
fi
rm -rf --one-file-system "$RL"
