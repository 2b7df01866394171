/**
 * @module test/integration/rootless-reboot
 * An enabled user container comes back after a reboot of the test host, with lingering on
 * and nobody logged in: logind starts tuser's manager at boot, whose default.target wants
 * berth-sandbox@NAME.service. The test host's / is volatile, so what a real host keeps on
 * disk is bound in: the user (a userdb record, read by nss-systemd), /etc/subuid and
 * /etc/subgid, the linger flag, and the home directory with the store and the units.
 * A second container that is not enabled stays down.
 */
import { strict as assert } from 'node:assert';
import { after, describe, test } from 'node:test';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, useTestHost } from '../testhost/index.ts';

const NAME = `rlreboot-${process.pid}`;
const UID = 1000;
const HEX = 'c'.repeat(64);
const STORE = '/home/tuser/.local/share/berth';
const LOWER = `${STORE}/snapshots/dir/${HEX}/fs`;

interface DriverResult { ok: boolean; value?: unknown; code?: string; message?: string }

function spec(name: string, args: string[]): Record<string, unknown> {
  return {
    name,
    image: { ref: 'localhost/busybox:test', digest: `sha256:${'a'.repeat(64)}`, id: `sha256:${'b'.repeat(64)}`, chainIds: [`sha256:${HEX}`] },
    process: { args, env: ['PATH=/bin'], cwd: '/', tty: false, stdin: false },
    mounts: [], readOnlyRoot: false, resources: {}, restart: 'no', boot: false, userns: 'pick', network: { mode: 'private' }, labels: {},
  };
}

describe('an enabled user container survives a reboot of the test host (lingering on)', { timeout: 300_000 }, () => {
  const state = mkdtempSync(join(tmpdir(), 'berth-rlreboot-'));
  chmodSync(state, 0o755);
  const dirs = { userdb: join(state, 'userdb'), home: join(state, 'home'), linger: join(state, 'linger') };
  for (const d of Object.values(dirs)) mkdirSync(d, { mode: 0o755 });
  writeFileSync(join(dirs.userdb, 'tuser.user'), JSON.stringify({ userName: 'tuser', uid: UID, gid: UID, homeDirectory: '/home/tuser', shell: '/bin/sh', disposition: 'regular' }));
  writeFileSync(join(dirs.userdb, 'tuser.group'), JSON.stringify({ groupName: 'tuser', gid: UID }));
  // nss-systemd finds a drop-in by UID through a UID.user symlink.
  symlinkSync('tuser.user', join(dirs.userdb, `${UID}.user`));
  symlinkSync('tuser.group', join(dirs.userdb, `${UID}.group`));
  writeFileSync(join(state, 'subid'), 'tuser:100000:65536\n');
  writeFileSync(join(dirs.linger, 'tuser'), '');
  chownSync(dirs.home, UID, UID);
  after(() => rmSync(state, { recursive: true, force: true }));
  const host = useTestHost({
    name: NAME,
    binds: [
      { host: realpathSync(join(repoRoot, 'node_modules')), ro: true },
      { host: dirs.userdb, target: '/etc/userdb', ro: true },
      { host: join(state, 'subid'), target: '/etc/subuid', ro: true },
      { host: join(state, 'subid'), target: '/etc/subgid', ro: true },
    ],
    persistentDirs: [{ host: dirs.home, target: '/home/tuser' }, { host: dirs.linger, target: '/var/lib/systemd/linger' }],
  });
  const env = { HOME: '/home/tuser', XDG_RUNTIME_DIR: `/run/user/${UID}`, DBUS_SESSION_BUS_ADDRESS: `unix:path=/run/user/${UID}/bus` };

  async function drv(verb: string, name = '', json?: unknown): Promise<DriverResult> {
    const r = await host().run(['node', '--import', 'tsx', 'test/integration/rootless-driver.ts', verb, name, ...(json === undefined ? [] : [typeof json === 'string' ? json : JSON.stringify(json)])],
      { user: 'tuser', reject: false, timeoutMs: 60_000, env });
    try {
      return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as DriverResult;
    } catch {
      throw new Error(`driver ${verb} ${name}: exit ${r.exitCode}: ${r.stdout} ${r.stderr}`);
    }
  }
  const ok = (r: DriverResult): unknown => {
    assert.ok(r.ok, `${r.code}: ${r.message}`);
    return r.value;
  };
  const managerUp = async (): Promise<void> => {
    for (let i = 0; i < 100 && (await host().exec(['test', '-S', `/run/user/${UID}/bus`], { reject: false })).exitCode !== 0; i++) await new Promise((r) => setTimeout(r, 100));
  };
  const waitRunning = async (name: string): Promise<{ status: string; pid?: number }> => {
    let st: { status: string; pid?: number } = { status: '' };
    for (let i = 0; i < 100 && st.status !== 'running'; i++) {
      const r = await drv('state', name);
      if (r.ok) st = r.value as typeof st;
      if (st.status !== 'running') await new Promise((res) => setTimeout(res, 200));
    }
    return st;
  };

  test('enable, reboot, running again with nobody logged in; the one not enabled stays down', async () => {
    const h = host();
    await managerUp();
    const mk = await h.run(['sh', '-euc', `mkdir -p ${LOWER}/bin && cp /usr/bin/busybox ${LOWER}/bin/ && for a in sh sleep; do ln -sf busybox ${LOWER}/bin/$a; done`], { user: 'tuser', reject: false, env });
    assert.equal(mk.exitCode, 0, mk.stderr);
    ok(await drv('create', 'boot', { spec: spec('boot', ['sleep', '100000']) }));
    ok(await drv('create', 'manual', { spec: spec('manual', ['sleep', '100000']) }));
    assert.deepEqual(ok(await drv('enable', 'boot')), { warnings: [] });
    ok(await drv('start', 'boot'));
    ok(await drv('start', 'manual'));
    const before = await waitRunning('boot');
    assert.equal(before.status, 'running');
    const ms = await h.reboot();
    console.log(`# test host reboot: ${ms} ms`);
    await managerUp();
    assert.equal((await host().exec(['loginctl', 'list-sessions', '--no-legend'])).stdout.trim(), '');
    const afterIt = await waitRunning('boot');
    assert.equal(afterIt.status, 'running', JSON.stringify(afterIt));
    assert.notEqual(afterIt.pid, before.pid);
    assert.notEqual((ok(await drv('state', 'manual')) as { status: string }).status, 'running');
    ok(await drv('rm', 'boot', 'force'));
    ok(await drv('rm', 'manual', 'force'));
  });
});
