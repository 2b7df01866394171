/**
 * @module test/integration/machine-systemd
 * berth machines as systemd services, in one test host with memory enforcement and
 * persistent /etc/systemd/{system,nspawn}, /var/lib/machines and /var/lib/berth (so a
 * reboot keeps them): the memory limit OOM-kills, restart policies after a crash,
 * enable + reboot, status/inspect/logs/ps agreeing with systemctl and machinectl,
 * injection cases and hand edits, zombie reaping and exec into a shell-less image, --boot.
 */
import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { formatBytes } from '../../src/machine/status.ts';
import { fixturesRoot } from '../fixtures/compress.ts';
import { writeImageLayout } from '../fixtures/layout.ts';
import { makeTarLayer } from '../fixtures/tar-layer.ts';
import { makeBusyboxMachine } from '../testhost/index.ts';
import { useMachineHost } from './machine-helpers.ts';

/** `Key: value` lines of `berth status` (the header block, up to the cgroup tree). */
function statusFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of text.split('\n')) {
    const m = /^\s*([A-Z][\w -]*?): (.*)$/.exec(l);
    if (m && out[m[1] as string] === undefined) out[m[1] as string] = m[2] as string;
    if (l === '') break;
  }
  return out;
}

/**
 * A distroless-style image: busybox's static binary alone as /busybox (no shell, no /bin,
 * no /etc). Not "/app": busybox picks the applet from argv[0] unless it starts with "busybox".
 */
async function distrolessLayout(): Promise<string> {
  const dir = join(fixturesRoot(), 'images', `distroless-${process.pid}`);
  await rm(dir, { recursive: true, force: true });
  const layer = await makeTarLayer([{ path: 'busybox', type: 'file', mode: 0o755, content: await readFile('/bin/busybox') }], 'gzip');
  await writeImageLayout(dir, 'latest', { layers: [layer], runConfig: { Env: ['PATH=/'], Cmd: ['/busybox', 'sleep', '1000'] } });
  return dir;
}

/** Polls a shell condition inside the test host (exit 0 = done) for up to `sec` seconds. */
const waitFor = (cond: string, sec = 10): string =>
  `for i in $(seq ${sec * 10}); do if ${cond}; then exit 0; fi; sleep 0.1; done; echo "timed out: ${cond.replace(/"/g, '\\"')}"; exit 1`;

/** Where scripts/make-boot-image.sh caches its layout (Debian bookworm minbase + systemd). */
const BOOT_IMAGE_CACHE = '/var/cache/berth-test/boot-image';

describe('machines as systemd services', { timeout: 900_000 }, () => {
  const bootImage = process.env.BERTH_TEST_BOOT_IMAGE || (existsSync(join(BOOT_IMAGE_CACHE, 'index.json')) ? BOOT_IMAGE_CACHE : undefined);
  const { berth, sh, host } = useMachineHost('msd', {
    memoryEnforcement: true,
    persistSystemdEtc: true,
    binds: bootImage ? [{ host: bootImage, ro: true }] : [],
  });

  test('--memory: MemoryMax set, a process above it is OOM-killed', async (t) => {
    const script = 'echo start; dd if=/dev/zero of=/dev/null bs=200M count=1 && echo allocated || echo dd-status-$?; exec sleep 1000';
    const r = await berth(['run', '-d', '--name', 'mem', '--memory', '64M', 'busybox', 'sh', '-c', script]);
    t.diagnostic(`run -d --memory ${r.durationMs} ms`);
    const max = await sh('systemctl show -p MemoryMax --value systemd-nspawn@mem');
    assert.equal(max.stdout.trim(), String(64 * 1024 * 1024));
    await sh(waitFor('journalctl -u systemd-nspawn@mem -o cat | grep -q dd-status'));
    const logs = await berth(['logs', 'mem']);
    assert.match(logs.stdout, /dd-status-137/, 'dd was SIGKILLed');
    assert.doesNotMatch(logs.stdout, /allocated/);
    const oom = await sh('cg=$(systemctl show -p ControlGroup --value systemd-nspawn@mem); find /sys/fs/cgroup/memory$cg -name memory.oom_control -exec grep -h oom_kill {} + | awk \'$1=="oom_kill"{s+=$2} END{print s+0}\'');
    assert.ok(Number(oom.stdout.trim()) >= 1, `oom_kill counter: ${oom.stdout}`);
    const lim = await sh('cg=$(systemctl show -p ControlGroup --value systemd-nspawn@mem); cat /sys/fs/cgroup/memory$cg/memory.limit_in_bytes');
    assert.equal(lim.stdout.trim(), String(64 * 1024 * 1024));
    assert.equal((await sh('systemctl is-active systemd-nspawn@mem')).stdout.trim(), 'active', 'only the hog died');
    await berth(['rm', '-f', 'mem']);
  });

  test('--restart on-failure runs a crashed command again, --restart no does not', async () => {
    await sh('mkdir -p /srv/rs-on /srv/rs-no');
    const crash = ['busybox', 'sh', '-c', 'echo run >> /data/count; exit 1'];
    await berth(['run', '-d', '--name', 'rson', '--restart', 'on-failure', '-v', '/srv/rs-on:/data:idmap', ...crash], { reject: false });
    await berth(['run', '-d', '--name', 'rsno', '--restart', 'no', '-v', '/srv/rs-no:/data:idmap', ...crash], { reject: false });
    await sh(waitFor('[ "$(wc -l < /srv/rs-on/count)" -ge 2 ]', 15));
    const n = await sh('systemctl show -p NRestarts --value systemd-nspawn@rson');
    assert.ok(Number(n.stdout.trim()) >= 1, `NRestarts=${n.stdout}`);
    assert.equal((await sh('systemctl show -p Restart --value systemd-nspawn@rson')).stdout.trim(), 'on-failure');
    await sh('sleep 2');
    assert.equal((await sh('wc -l < /srv/rs-no/count')).stdout.trim(), '1');
    const no = await sh('systemctl show -p NRestarts -p ActiveState -p Result systemd-nspawn@rsno');
    assert.match(no.stdout, /NRestarts=0/);
    assert.match(no.stdout, /ActiveState=failed/);
    await berth(['rm', '-f', 'rson', 'rsno']);
  });

  test('enable: the machine comes back after a reboot; disable removes the wants link', async (t) => {
    await berth(['run', '-d', '--name', 'boot', 'busybox', 'sh', '-c', 'echo booted-$(cat /proc/sys/kernel/random/boot_id); exec sleep 1000']);
    await berth(['enable', 'boot']);
    const link = '/etc/systemd/system/machines.target.wants/systemd-nspawn@boot.service';
    assert.equal((await sh(`test -L ${link} && echo yes`)).stdout.trim(), 'yes');
    const ms = await host().reboot();
    t.diagnostic(`reboot ${ms} ms`);
    await sh(waitFor('systemctl is-active -q systemd-nspawn@boot', 20));
    const m = await sh('machinectl show boot -p State --value');
    assert.equal(m.stdout.trim(), 'running');
    const ps = JSON.parse((await berth(['ps', '--json'])).stdout) as Array<{ name: string; enabled?: string }>;
    assert.equal(ps.find((x) => x.name === 'boot')?.enabled, 'enabled');
    await berth(['disable', 'boot']);
    assert.equal((await sh(`test -e ${link} || echo gone`)).stdout.trim(), 'gone');
    assert.equal((await sh('systemctl is-enabled systemd-nspawn@boot', { reject: false })).stdout.trim(), 'disabled');
    await berth(['rm', '-f', 'boot']);
  });

  test('status agrees with systemctl show and machinectl; inspect, logs -n/--since, ps -a', async () => {
    const script = 'ip addr add 10.9.9.2/24 dev host0; ip link set host0 up; for i in 1 2 3 4; do echo line-$i; done; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo late; exec sleep 1000';
    await berth(['run', '-d', '--name', 'st', '--network', 'veth', '--memory', '96M', '--pids-limit', '77', 'busybox', 'sh', '-c', script]);
    await sh(waitFor('journalctl -u systemd-nspawn@st -o cat | grep -q line-4'));
    await sh('sleep 1.1');
    const since = (await sh("date '+%Y-%m-%d %H:%M:%S'")).stdout.trim();
    await sh('sleep 1.1'); // `late` is printed in a later second than `since`, whatever the load
    await berth(['exec', 'st', 'touch', '/tmp/go']);
    await sh(waitFor('journalctl -u systemd-nspawn@st -o cat | grep -qx late'));
    const st = await berth(['status', 'st']);
    const f = statusFields(st.stdout);
    const u = Object.fromEntries((await sh('systemctl show -p ActiveState -p SubState -p MainPID -p MemoryMax -p TasksMax -p ControlGroup systemd-nspawn@st')).stdout.trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
    const m = Object.fromEntries((await sh('machinectl show st -p Leader -p Class')).stdout.trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
    assert.match(f.Active ?? '', new RegExp(`^${u.ActiveState} \\(${u.SubState}\\)`));
    assert.equal(f['Main PID'], u.MainPID);
    assert.equal(f.Machine, `running, class ${m.Class}, leader ${m.Leader}`);
    assert.equal(f.CGroup, u.ControlGroup);
    assert.match(f.Memory ?? '', new RegExp(`\\(max: ${formatBytes(Number(u.MemoryMax)).replace('.', '\\.')}\\)$`));
    assert.match(f.Tasks ?? '', /^\d+ \(limit: 77\)$/);
    assert.equal(u.TasksMax, '77');
    assert.match(f.CPU ?? '', /^\d+(ms|\.\d+s)$/);
    assert.match(st.stdout, new RegExp(`─${m.Leader} /run/host/berth/init`), 'cgroup tree shows the leader');
    assert.match(st.stdout, new RegExp(`─${u.MainPID} systemd-nspawn`), 'cgroup tree shows the main PID');
    const addr = (await sh("machinectl status st -n0 --no-pager | sed -n '/Address:/,/UID Shift\\|Unit:\\|OS:/p' | grep -v 'UID Shift\\|Unit:\\|OS:' | sed 's/.*Address://' | tr -s ' \\t\\n' ' '")).stdout.trim();
    assert.equal(f.Address, addr);
    assert.match(f.Address ?? '', /10\.9\.9\.2/);
    const insp = (JSON.parse((await berth(['inspect', 'st'])).stdout) as Array<Record<string, any>>)[0] ?? {};
    assert.equal(f.Image, insp.Image);
    assert.equal(f.Digest, insp.ImageDigest);
    assert.match(f.Digest ?? '', /^sha256:[0-9a-f]{64}$/);
    assert.equal(insp.State.MainPID, Number(u.MainPID));
    assert.equal(insp.Machine.Leader, m.Leader);
    assert.deepEqual(insp.Command, ['sh', '-c', script]);
    assert.match(st.stdout, /systemd-nspawn\[\d+\]: late/, 'last journal lines');
    assert.equal((await berth(['logs', '-n', '2', 'st'])).stdout, 'line-4\nlate\n');
    assert.equal((await berth(['logs', '--since', since, 'st'])).stdout, 'late\n');
    // ps -a: a created (never started) machine; one made with machinectl; one with plain nspawn.
    await berth(['create', '--name', 'idle', 'busybox', 'true']);
    await makeBusyboxMachine(host(), 'hand');
    await sh('machinectl start hand');
    await sh('d=/var/lib/machines/raw; mkdir -p $d/bin $d/usr; cp /bin/busybox $d/bin/; ln -sf busybox $d/bin/sleep; systemd-run -q --unit=raw-nspawn -p Delegate=yes systemd-nspawn -q --keep-unit -D $d -M raw /bin/sleep 1000');
    await sh(waitFor('machinectl show raw >/dev/null 2>&1'));
    const ps = JSON.parse((await berth(['ps', '--json'])).stdout) as Array<{ name: string; state: string; unit: string; berth: boolean }>;
    const psa = JSON.parse((await berth(['ps', '-a', '--json'])).stdout) as typeof ps;
    assert.deepEqual(ps.map((x) => x.name).sort(), ['hand', 'raw', 'st']);
    assert.deepEqual(psa.map((x) => x.name).sort(), ['hand', 'idle', 'raw', 'st']);
    assert.equal(psa.find((x) => x.name === 'idle')?.state, 'inactive');
    assert.equal(psa.find((x) => x.name === 'raw')?.unit, 'raw-nspawn.service');
    assert.equal(psa.find((x) => x.name === 'hand')?.berth, false);
    const ls = await berth(['ls']);
    assert.match(ls.stdout, /^raw\s/m);
    assert.match(ls.stdout, /^hand\s/m);
    await sh('machinectl terminate raw hand; systemctl stop systemd-nspawn@hand');
    await berth(['rm', '-f', 'st', 'idle']);
  });

  test('injection: %, $, quotes, backslash, ; arrive byte-exact; newlines and bad names refused', async () => {
    await sh('mkdir -p /srv/inj');
    const v = `p%h %% $HOME \${X} "dq" 'sq' back\\slash \\\\n semi; end`;
    const args = ['a;b', '%n', '$$', '\\', '"', "'", ' lead', v];
    await berth(['run', '-d', '--name', 'inj', '-v', '/srv/inj:/out:idmap', '-e', `V=${v}`, 'busybox', 'sh', '-c',
      'printf %s "$V" > /out/env; for a in "$@"; do printf "%s|" "$a"; done > /out/args; exec sleep 1000', 'sh', ...args]);
    await sh(waitFor('test -s /srv/inj/args'));
    assert.equal((await sh('cat /srv/inj/env')).stdout, v);
    assert.equal((await sh('cat /srv/inj/args')).stdout, `${args.join('|')}|`);
    const ex = await berth(['exec', '-e', `W=${v}`, 'inj', 'sh', '-c', 'printf %s "$W"']);
    assert.equal(ex.stdout, v);
    await berth(['rm', '-f', 'inj']);
    const bad: Array<[string, string[]]> = [
      ['env newline', ['-e', 'A=x\nBoot=yes']],
      ['arg newline', []],
      ['name a/b', ['--name', 'a/b']],
      ['name ../x', ['--name', '../x']],
      ['name x y', ['--name', 'x y']],
    ];
    for (const [what, flags] of bad) {
      const name = flags.includes('--name') ? [] : ['--name', 'nl'];
      const cmd = what === 'arg newline' ? ['sh', '-c', 'echo a\nBoot=yes'] : ['true'];
      const r = await berth(['run', '-d', ...name, ...flags, 'busybox', ...cmd], { reject: false });
      assert.equal(r.exitCode, 2, `${what}: ${r.stderr}`);
      assert.match(r.stderr, what.startsWith('name') ? /name/i : /newline|line break|control/i, what);
    }
    const left = await sh('ls -a /etc/systemd/nspawn /var/lib/machines /etc/systemd/system; machinectl list --no-legend', { reject: false });
    assert.doesNotMatch(left.stdout, /\bnl\b|inj|a\/b|\.\.\/x|x y/);
  });

  test('hand edits: an admin drop-in (systemctl edit) shows in inspect and status', async () => {
    await berth(['run', '-d', '--name', 'ed', '--memory', '64M', 'busybox', 'sleep', '1000']);
    await sh('d=/etc/systemd/system/systemd-nspawn@ed.service.d; printf "[Service]\\nMemoryMax=100M\\n" > $d/90-admin.conf; systemctl daemon-reload');
    assert.equal((await sh('systemctl show -p MemoryMax --value systemd-nspawn@ed')).stdout.trim(), '104857600');
    const insp = (JSON.parse((await berth(['inspect', 'ed'])).stdout) as Array<Record<string, any>>)[0] ?? {};
    assert.equal(insp.Resources.MemoryMax, '104857600');
    assert.match(insp.DropInFiles['90-admin.conf'], /MemoryMax=100M/);
    const f = statusFields((await berth(['status', 'ed'])).stdout);
    assert.match(f.Memory ?? '', /\(max: 100\.0M\)$/);
    assert.match(f['Drop-In'] ?? '', /90-admin\.conf/);
    await berth(['restart', 'ed']);
    const lim = await sh('cat /sys/fs/cgroup/memory$(systemctl show -p ControlGroup --value systemd-nspawn@ed)/memory.limit_in_bytes');
    assert.equal(lim.stdout.trim(), '104857600', 'the hand edit is what the kernel enforces');
    await berth(['rm', '-f', 'ed']);
    assert.equal((await sh('ls /etc/systemd/system/systemd-nspawn@ed.service.d 2>&1', { reject: false })).exitCode, 2);
  });

  test('zombies: orphans are reaped by the stub init; exec into busybox and a shell-less image', async () => {
    // Orphans: the subshells exit at once, so their sleeps are re-parented to PID 1 (the
    // forwarding init), which must reap them. (A child whose parent lives on but never
    // waits — `sleep 0.1 & exec sleep 1000` — stays a zombie under any init.)
    await berth(['run', '-d', '--name', 'zz', 'busybox', 'sh', '-c', '(sleep 0.1 &); (sleep 0.1 &); (sh -c "sleep 0.2 &" &); exec sleep 1000']);
    await sh('sleep 1');
    const ps = await berth(['exec', 'zz', 'ps', '-o', 'pid,ppid,stat,comm']);
    const rows = ps.stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
    assert.ok(rows.length >= 2, ps.stdout);
    assert.deepEqual(rows.filter((r) => (r[2] ?? '').startsWith('Z')), [], ps.stdout);
    const e = await berth(['exec', 'zz', 'sh', '-c', 'exit 5'], { reject: false });
    assert.equal(e.exitCode, 5);
    await berth(['rm', '-f', 'zz']);

    const layout = await distrolessLayout();
    try {
      await berth(['image', 'import', layout, 'distroless:latest']);
      await berth(['run', '-d', '--name', 'dl', 'distroless']);
      assert.equal((await berth(['exec', 'dl', '/busybox', 'true'])).exitCode, 0);
      const r = await berth(['exec', 'dl', '/busybox', 'sh', '-c', 'echo in-$(/busybox cat /proc/1/comm); exit 3'], { reject: false });
      assert.equal(r.exitCode, 3);
      assert.equal(r.stdout, 'in-init\n');
      const missing = await berth(['exec', 'dl', '/bin/sh'], { reject: false });
      assert.notEqual(missing.exitCode, 0, 'no shell in a distroless image');
      await berth(['rm', '-f', 'dl']);
    } finally {
      await rm(layout, { recursive: true, force: true });
    }
  });

  // The image: `bash scripts/make-boot-image.sh` (debootstrap minbase bookworm + systemd,
  // systemd-sysv, dbus; cached in BOOT_IMAGE_CACHE) or any OCI layout of an image with
  // systemd in BERTH_TEST_BOOT_IMAGE. Booted with berth's defaults: a private UID range,
  // idmapped EROFS lowers under an overlay root, no catatonit, nspawn's KillSignal.
  test('--boot: an image with systemd boots, registered, reachable with systemd-run -M', {
    skip: bootImage ? false : 'run scripts/make-boot-image.sh (or set BERTH_TEST_BOOT_IMAGE to an OCI layout of an image with systemd)',
  }, async (t) => {
    await berth(['image', 'import', bootImage as string, 'bootable:latest']);
    const t0 = Date.now();
    await berth(['run', '-d', '--boot', '--name', 'sd', 'bootable']);
    try {
      await sh(waitFor('systemctl is-active -q systemd-nspawn@sd', 30));
      await sh(waitFor('systemd-run -M sd --wait -P -q true >/dev/null 2>&1', 60));
      t.diagnostic(`boot to systemd-run -M ${Date.now() - t0} ms`);
      const who = await sh('systemd-run -M sd --wait -P -q sh -c \'echo $(id -u) $(cat /proc/1/comm) $(systemd-detect-virt)\'');
      assert.equal(who.stdout.trim(), '0 systemd systemd-nspawn');
      const m = Object.fromEntries((await sh('machinectl show sd -p Class -p State -p Unit')).stdout.trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
      assert.deepEqual(m, { Class: 'container', State: 'running', Unit: 'systemd-nspawn@sd.service' });
      // Outside, container root is the machine's private range, not host root.
      const uid = await sh("stat -c %u /proc/$(machinectl show sd -p Leader --value)");
      assert.notEqual(uid.stdout.trim(), '0');
      await sh(waitFor('systemctl -M sd is-system-running 2>/dev/null | grep -qE "running|degraded"', 60));
      const failed = (await sh('systemctl -M sd list-units --failed --plain --no-legend', { reject: false })).stdout.trim();
      if (failed) t.diagnostic(`failed units inside: ${failed.replace(/\n/g, '; ')}`);
      const t1 = Date.now();
      await berth(['stop', 'sd']);
      t.diagnostic(`stop ${Date.now() - t1} ms`);
      const unit = await sh('systemctl show -p ActiveState -p Result systemd-nspawn@sd');
      assert.match(unit.stdout, /ActiveState=inactive/);
      assert.match(unit.stdout, /Result=success/, 'a clean shutdown (SIGRTMIN+3), not a kill after the timeout');
      assert.notEqual((await sh('machinectl show sd', { reject: false })).exitCode, 0, 'unregistered');
      await berth(['rm', 'sd']);
    } catch (e) {
      const j = await sh('journalctl -u systemd-nspawn@sd -o cat --no-pager | tail -n 40', { reject: false });
      t.diagnostic(`journal of systemd-nspawn@sd:\n${j.stdout}`);
      await berth(['rm', '-f', 'sd'], { reject: false });
      throw e;
    }
  });
});
