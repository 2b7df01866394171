# bench/rootless.sh - sourced by run.sh for the `rootless` section (not in the default
# list: it boots a test host and creates a user there; about 2-3 min).
# In a test host (systemd as PID 1 with a user manager; this VM's PID 1 is not systemd),
# as the unprivileged user tuser (lingering, /etc/subuid range), same busybox OCI layout:
#   rootless-berth-run-rm    bin/berth run --rm --network=none IMAGE true (the sandbox as
#                            berth's child, no unit: see README "Foreground runs")
#   rootless-podman-run-rm   podman run --rm --network=none (rootless: its own --root and
#                            --runroot in the user's home, overlay, cgroupfs; the test
#                            host's /etc is empty, hence --signature-policy for the pull)
# one probe run, then RUNS_ROOTLESS (default 5) timed runs each; the ratio is printed
# (issue 10 target: berth <= 0.75x podman). berth's image comes from `berth pull` as tuser
# from a docker-registry on the test host's own 127.0.0.1.
bench_log "== rootless"
RL=$W/rootless
mkdir -p "$RL"
BB=$BENCH_DIR/images/busybox
[ -d "$BB" ] || { "$HERE/make-images.sh" || bench_die "make-images.sh failed"; }
RUNS_RL=${RUNS_ROOTLESS:-5}
boot_testhost RL_TH_PID "$RL/th" "$BB" rootless
if [ -n "$L" ]; then
  NS=(nsenter -t "$L" -a)
  "${NS[@]}" sh -c 'touch /etc/subuid /etc/subgid; id tuser >/dev/null 2>&1 || useradd -m tuser; loginctl enable-linger tuser' > /dev/null 2>&1
  for _ in $(seq 100); do "${NS[@]}" test -S /run/user/1000/bus && break; sleep 0.1; done
  ASU=("${NS[@]}" runuser -u tuser -- env HOME=/home/tuser TMPDIR=/home/tuser/tmp XDG_RUNTIME_DIR=/run/user/1000 DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus)
  "${ASU[@]}" mkdir -p /home/tuser/tmp
  # A copy of the layout the user may read (the bench's own is root's).
  "${NS[@]}" sh -c "rm -rf /srv/rl-bb && cp -r '$BB' /srv/rl-bb && chmod -R a+rX /srv/rl-bb"
  BB=/srv/rl-bb
  # podman, rootless
  PODMAN_U=("${ASU[@]}" podman --root /home/tuser/podman-root --runroot /home/tuser/podman-run --storage-driver=overlay --cgroup-manager=cgroupfs --events-backend=file)
  "${ASU[@]}" sh -c 'echo "{\"default\":[{\"type\":\"insecureAcceptAnything\"}]}" > /home/tuser/policy.json'
  if "${PODMAN_U[@]}" pull -q --signature-policy /home/tuser/policy.json "oci:$BB:latest" > "$OUT/err/rootless-podman-pull.txt" 2>&1; then
    PIMG=$("${PODMAN_U[@]}" images -q | head -n1)
    measure rootless-podman-run-rm rootless busybox podman "$RUNS_RL" 1 \
      "$(printf '%q ' "${PODMAN_U[@]}") run --rm --network=none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 $PIMG true"
  else
    msg=$(error_line "$OUT/err/rootless-podman-pull.txt")
    bench_log "podman rootless cannot run here: $msg"
    row rootless-podman-run-rm rootless busybox podman failed "podman rootless: $msg" "podman pull oci:" ""
  fi
  # berth, as the same user: a user's store is filled by `berth pull` (import works on
  # root's store only), from a docker-registry on the test host's own 127.0.0.1 (its
  # private network namespace), fed from the same OCI layout with skopeo.
  "${NS[@]}" sh -c 'mkdir -p /srv/rl-reg && printf "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: /srv/rl-reg\nhttp:\n  addr: 127.0.0.1:5000\n" > /srv/rl-reg.yml && systemd-run --unit=berth-bench-registry docker-registry serve /srv/rl-reg.yml' > /dev/null 2>&1
  for _ in $(seq 50); do "${NS[@]}" curl -fsS -m 1 -o /dev/null http://127.0.0.1:5000/v2/ 2>/dev/null && break; sleep 0.1; done
  if "${NS[@]}" skopeo copy -q --insecure-policy --dest-tls-verify=false "oci:$BB:latest" docker://127.0.0.1:5000/busybox:latest > "$OUT/err/rootless-berth-pull.txt" 2>&1 &&
    "${ASU[@]}" "$ROOT/bin/berth" pull -q --tls-verify=false 127.0.0.1:5000/busybox:latest >> "$OUT/err/rootless-berth-pull.txt" 2>&1; then
    measure rootless-berth-run-rm rootless busybox berth "$RUNS_RL" 1 \
      "$(printf '%q ' "${ASU[@]}") $ROOT/bin/berth run --rm --network=none 127.0.0.1:5000/busybox:latest true"
  else
    row rootless-berth-run-rm rootless busybox berth failed "berth as a user: $(error_line "$OUT/err/rootless-berth-pull.txt")" "berth pull" ""
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
