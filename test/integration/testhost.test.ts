/**
 * @module test/integration/testhost
 * Proves the test-host harness: a real systemd boots in an nspawn container sharing the
 * host's /usr, runs commands as units, runs machined and a nested busybox machine,
 * enforces memory limits, survives a reboot with its persistent dirs, powers off leaving
 * nothing behind, and cleans up after a crashed test process. One host for the whole file
 * (plus two short-lived ones for the crash case): boots are the expensive part.
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { run } from '../../src/base/exec.ts';
import { makeBusyboxMachine, repoRoot, useTestHost, withTestHost } from '../testhost/index.ts';

const base = mkdtempSync(join(tmpdir(), 'berth-testhost-test-'));
const dirs = {
  machines: join(base, 'machines'),
  data: join(base, 'data'),
  units: join(base, 'etc-systemd-system'),
  nspawn: join(base, 'etc-systemd-nspawn'),
};
const NAME = `th-itest-${process.pid}`;

/** Exists and is not a zombie (this machine's PID 1 reaps orphans lazily). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

describe('test host', { timeout: 300_000 }, () => {
  const host = useTestHost({
    name: NAME,
    persistentMachinesDir: dirs.machines,
    persistentDirs: [
      { host: dirs.data, target: '/var/lib/berth-test' },
      // So `systemctl enable` and .nspawn files survive a reboot (/etc is a fresh tmpfs each boot).
      { host: dirs.units, target: '/etc/systemd/system' },
      { host: dirs.nspawn, target: '/etc/systemd/nspawn' },
    ],
    memoryEnforcement: true,
  });
  // Registered after useTestHost's hook, so it runs after the power-off.
  after(() => rmSync(base, { recursive: true, force: true }));

  test('boots systemd to running', async (t) => {
    const h = host();
    t.diagnostic(`boot ${h.bootMs} ms, state ${h.bootState}, leader ${h.leaderPid}`);
    assert.match(h.bootState, /^(running|degraded)/);
    const r = await h.exec(['systemctl', 'is-system-running']);
    assert.equal(r.stdout.trim(), 'running');
    const cmdline = readFileSync(`/proc/${h.leaderPid}/cmdline`, 'utf8');
    assert.match(cmdline, /systemd/);
    // Its own cgroup below ours, so test hosts never share nspawn's payload tree.
    const cg = readFileSync(`/proc/${h.leaderPid}/cgroup`, 'utf8');
    assert.match(cg, new RegExp(`^\\d+:name=systemd:.*/testhost\\.${NAME}/payload/`, 'm'));
    assert.match(cg, new RegExp(`^0::.*/testhost\\.${NAME}/payload/`, 'm'));
    assert.match(h.consoleLog(), /Reached target .*Multi-User System/);
  });

  test('run(): a transient unit in the test host, env, stdin, exit codes, no $ expansion', async () => {
    const h = host();
    const id = await h.run(['id']);
    assert.match(id.stdout, /^uid=0\(root\) gid=0\(root\)/);
    const r = await h.run(['sh', '-c', 'echo "$FOO"; cat; pwd; grep -E "^0::" /proc/self/cgroup', 'sh'], {
      env: { FOO: 'a b $x %n "q"' },
      input: 'from stdin\n',
    });
    const [foo, stdin, cwd, cg] = r.stdout.split('\n');
    assert.equal(foo, 'a b $x %n "q"');
    assert.equal(stdin, 'from stdin');
    assert.equal(cwd, repoRoot);
    assert.match(cg ?? '', /^0::\/system\.slice\/run-.*\.service$/);
    const lit = await h.run(['printf', '%s|', '$HOME', '${X}', '$$', '%i']);
    assert.equal(lit.stdout, '$HOME|${X}|$$|%i|');
    const fail = await h.run(['sh', '-c', 'echo oops >&2; exit 7'], { reject: false });
    assert.equal(fail.exitCode, 7);
    assert.match(fail.stderr, /oops/);
    await assert.rejects(h.run(['false']), /exited with 1/);
  });

  test('exec(): in the namespaces, without a unit', async () => {
    const h = host();
    const r = await h.exec(['sh', '-c', 'hostname; echo "$PATH"; test -x ./bin/berth -o -d ./src && echo repo']);
    const [hn, path, repo] = r.stdout.split('\n');
    assert.equal(hn, NAME);
    assert.match(path ?? '', /\/usr\/bin/);
    assert.equal(repo, 'repo');
    const slow = await h.exec(['sleep', '30'], { timeoutMs: 500, reject: false });
    assert.equal(slow.exitCode, 124, 'timed out inside with coreutils timeout');
  });

  test('nested systemd-run and bus-activated machined', async () => {
    const h = host();
    const r = await h.run(['systemd-run', '--wait', '-P', 'true']);
    assert.equal(r.exitCode, 0);
    const m = await h.run(['machinectl', 'list', '--no-legend']);
    assert.equal(m.exitCode, 0);
    const active = await h.exec(['systemctl', 'is-active', 'systemd-machined']);
    assert.equal(active.stdout.trim(), 'active');
  });

  test('nested machine: systemctl start systemd-nspawn@bb (busybox)', async (t) => {
    const h = host();
    await makeBusyboxMachine(h, 'bb');
    const start = await h.exec(['systemctl', 'start', 'systemd-nspawn@bb']);
    t.diagnostic(`nested start ${start.durationMs} ms`);
    const list = await h.exec(['machinectl', 'list', '--no-legend']);
    assert.match(list.stdout, /^bb\s+container\s+systemd-nspawn\s+busybox/m);
    const show = await h.exec(['machinectl', 'show', 'bb', '-p', 'State', '--value']);
    assert.equal(show.stdout.trim(), 'running');
    // -U: the machine's root is a user namespace; files on disk stay uid 0 (idmapped).
    const uidmap = await h.exec(['sh', '-c', 'cat /proc/$(machinectl show bb -p Leader --value)/uid_map']);
    assert.doesNotMatch(uidmap.stdout.trim(), /^0\s+0\s/);
    const stop = await h.exec(['systemctl', 'stop', 'systemd-nspawn@bb']);
    t.diagnostic(`nested stop ${stop.durationMs} ms`);
    assert.ok(stop.durationMs < 20_000, 'stop should not wait for the 90 s timeout');
  });

  test('memory limits are enforced (OOM kill)', async () => {
    const h = host();
    const alloc = 'const a=[];for(let i=0;i<20;i++)a.push(Buffer.alloc(10<<20,1));console.log("allocated")';
    const script = [
      'node -e "$1"; echo "exit=$?"',
      'cg=$(sed -n "s/^[0-9]*:memory://p" /proc/self/cgroup)',
      'cat /sys/fs/cgroup/memory$cg/memory.limit_in_bytes',
      'grep ^oom_kill /sys/fs/cgroup/memory$cg/memory.oom_control',
    ].join('\n');
    const r = await h.run(['sh', '-c', script, 'sh', alloc], { properties: ['MemoryMax=64M'] });
    assert.doesNotMatch(r.stdout, /allocated/);
    assert.match(r.stdout, /^exit=137$/m);
    assert.match(r.stdout, /^67108864$/m);
    assert.match(r.stdout, /^oom_kill [1-9]/m);
    const free = await h.run(['node', '-e', alloc]);
    assert.match(free.stdout, /allocated/);
  });

  test('reboot keeps persistent dirs and brings enabled machines back', async (t) => {
    const h = host();
    await makeBusyboxMachine(h, 'bb');
    await h.exec(['systemctl', 'enable', 'systemd-nspawn@bb']);
    await h.exec(['sh', '-c', 'echo kept > /var/lib/berth-test/file; echo gone > /root/volatile']);
    const oldLeader = h.leaderPid;
    const ms = await h.reboot();
    t.diagnostic(`reboot ${ms} ms (boot part ${h.bootMs} ms), state ${h.bootState}`);
    assert.notEqual(h.leaderPid, oldLeader);
    assert.equal(alive(oldLeader), false);
    assert.equal((await h.exec(['cat', '/var/lib/berth-test/file'])).stdout, 'kept\n');
    assert.equal(readFileSync(join(dirs.data, 'file'), 'utf8'), 'kept\n');
    assert.equal((await h.exec(['test', '-e', '/root/volatile'], { reject: false })).exitCode, 1);
    assert.equal((await h.exec(['systemctl', 'is-active', 'systemd-nspawn@bb'])).stdout.trim(), 'active');
    assert.match(h.consoleLog(), /Container .* is being rebooted|Rebooting/);
    // Memory enforcement is re-applied after the reboot.
    const rw = await h.exec(['findmnt', '-no', 'OPTIONS', '/sys/fs/cgroup/memory']);
    assert.match(rw.stdout, /^rw/);
  });

  test('a crashed owner leaves a test host behind; the next boot cleans it up', async (t) => {
    const crashName = `th-crash-${process.pid}`;
    const child = [
      `import { writeSync } from 'node:fs';`,
      `import { bootTestHost } from ${JSON.stringify(join(repoRoot, 'test/testhost/index.ts'))};`,
      `const h = await bootTestHost({ name: ${JSON.stringify(crashName)}, networkd: false });`,
      `writeSync(1, JSON.stringify({ leader: h.leaderPid, nspawn: h.nspawnPid, stateDir: h.stateDir }));`,
      `process.kill(process.pid, 'SIGKILL');`,
    ].join('\n');
    const r = await run(['node', '--import', 'tsx', '--input-type=module', '-e', child], { cwd: repoRoot, reject: false });
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    const left = JSON.parse(r.stdout) as { leader: number; nspawn: number; stateDir: string };
    assert.ok(alive(left.leader) && alive(left.nspawn), 'the crashed run left its test host running');
    // withTestHost: boots for this test only and always powers off.
    await withTestHost(t, { name: crashName, networkd: false }, async (h2) => {
      t.diagnostic(`boot after crash ${h2.bootMs} ms, state ${h2.bootState}`);
      assert.equal(alive(left.leader), false);
      assert.equal(alive(left.nspawn), false);
      assert.equal(existsSync(left.stateDir), false);
      assert.equal((await h2.run(['id', '-u'])).stdout, '0\n');
    });
    assert.equal(existsSync(`/run/berth-testhost/${crashName}.json`), false);
  });

  test('poweroff is clean and leaves nothing behind', async (t) => {
    const h = host();
    const cgroups = readFileSync(`/run/berth-testhost/${h.name}.json`, 'utf8');
    const { cgroups: cgDirs } = JSON.parse(cgroups) as { cgroups: string[] };
    assert.ok(cgDirs.length >= 1 && cgDirs.every((d) => existsSync(d)));
    const { leaderPid, nspawnPid, stateDir } = h;
    // A process exec() started (parent outside, so systemd-shutdown cannot reap it) would
    // hold the power-off ~10 s; the harness kills such strays first.
    const stray = h.exec(['sleep', '60'], { reject: false });
    await new Promise((r) => setTimeout(r, 200));
    const ms = await h.poweroff();
    t.diagnostic(`poweroff ${ms} ms (with nested bb running)`);
    assert.ok(ms < 8_000, `poweroff took ${ms} ms`);
    assert.equal((await stray).signal, 'SIGKILL');
    assert.equal(h.running, false);
    assert.equal(alive(leaderPid) || alive(nspawnPid), false);
    assert.ok(cgDirs.every((d) => !existsSync(d)), 'cgroups removed');
    assert.equal(existsSync(`/run/systemd/nspawn/propagate/${h.name}`), false);
    assert.equal(existsSync(`/run/berth-testhost/${h.name}.json`), false);
    assert.equal(existsSync(stateDir), false);
    assert.equal(await h.poweroff(), ms, 'idempotent');
    writeFileSync(join(dirs.data, 'after-poweroff'), 'ok');
  });
});
