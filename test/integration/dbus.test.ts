/**
 * @module test/integration/dbus
 * berth's own D-Bus client against the real dbus-daemon, systemd 252 and machined of a
 * test host, reached from outside through /proc/LEADER/root/run/dbus/system_bus_socket
 * (same uid 0, so SASL EXTERNAL holds): the answers agree with systemctl and machinectl,
 * GetUnit never loads a unit, a unit file systemd never loaded starts without a
 * daemon-reload, jobs end with the right JobRemoved result, concurrent sharedReloads
 * collapse, and errors carry their D-Bus names and berth codes.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { connectBus, dbusErrorName, MachineManager, SystemdManager, type Bus } from '../../src/dbus/index.ts';
import { isBerthError } from '../../src/base/errors.ts';
import { makeBusyboxMachine, useTestHost } from '../testhost/index.ts';

describe('D-Bus proxies against a real systemd and machined', { timeout: 300_000 }, () => {
  const host = useTestHost({ name: `dbus-${process.pid}` });
  const runDir = mkdtempSync(join(tmpdir(), 'berth-dbus-run-'));
  after(() => rmSync(runDir, { recursive: true, force: true }));
  let bus: Bus | undefined;
  const address = (): string => `unix:path=/proc/${host().leaderPid}/root/run/dbus/system_bus_socket`;
  const sd = async (): Promise<SystemdManager> => new SystemdManager((bus ??= await connectBus(address())));
  const md = async (): Promise<MachineManager> => new MachineManager((bus ??= await connectBus(address())));
  const sh = async (script: string): Promise<string> => (await host().exec(['sh', '-c', script])).stdout;
  after(() => bus?.close());

  test('ListUnitsByPatterns agrees with systemctl list-units', async () => {
    const mine = (await (await sd()).listUnitsByPatterns([], ['*.service', '*.socket'])).map((u) => `${u.id} ${u.loadState} ${u.activeState} ${u.subState}`).sort();
    const theirs = (await sh("systemctl list-units --all --plain --no-legend --no-pager '*.service' '*.socket' | awk '{print $1, $2, $3, $4}'"))
      .trim().split('\n').filter((l) => !l.startsWith('●')).sort();
    assert.deepEqual(mine, theirs);
  });

  test('GetUnit does not load a unit; LoadUnit does; properties match systemctl show', async () => {
    const m = await sd();
    assert.equal(await m.getUnit('berth-never-loaded.service'), undefined);
    assert.equal((await m.listUnitsByPatterns([], ['berth-never-loaded.service'])).length, 0, 'still not loaded');
    const path = await m.loadUnit('dbus.service');
    const p = await m.unitProperties(path);
    const show = await sh('systemctl show -p Id -p ActiveState -p SubState -p FragmentPath --value dbus.service');
    assert.deepEqual([p.Id, p.ActiveState, p.SubState, p.FragmentPath], show.trim().split('\n'));
    assert.equal(typeof p.ActiveEnterTimestamp, 'bigint');
  });

  test('a unit file systemd never loaded starts without a reload; jobs report done/failed', async (t) => {
    const seen: string[] = [];
    (bus ??= await connectBus(address())).onSignal((s) => seen.push(`${s.member} ${JSON.stringify(s.body, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`));
    t.after(() => t.diagnostic(`signals: ${seen.join('; ')}`));
    const name = `berth-dbus-${process.pid}`;
    await sh(`printf '[Service]\\nExecStart=/bin/sleep 1000\\n' > /etc/systemd/system/${name}.service;
      printf '[Service]\\nType=oneshot\\nExecStart=/bin/false\\n' > /etc/systemd/system/${name}-bad.service`);
    const m = await sd();
    const reloadsBefore = await sh("journalctl -b -o cat --no-pager | grep -c '^Reloading' || true");
    assert.equal(await m.runJob('StartUnit', `${name}.service`, { timeoutMs: 15_000 }), 'done');
    assert.equal((await sh(`systemctl is-active ${name}.service`)).trim(), 'active');
    assert.equal(await m.runJob('StartUnit', `${name}-bad.service`), 'failed');
    assert.equal((await sh(`systemctl is-failed ${name}-bad.service || true`)).trim(), 'failed');
    await m.resetFailedUnit(`${name}-bad.service`);
    assert.notEqual((await sh(`systemctl is-failed ${name}-bad.service || true`)).trim(), 'failed');
    // KillUnit SIGKILL: the service dies (Restart=no), the stop job then has nothing to do.
    await m.killUnit(`${name}.service`, 'all', 9);
    await sh(`for i in $(seq 50); do systemctl is-active -q ${name}.service || exit 0; sleep 0.1; done; exit 1`);
    assert.equal(await m.runJob('StopUnit', `${name}.service`), 'done');
    assert.equal(await sh("journalctl -b -o cat --no-pager | grep -c '^Reloading' || true"), reloadsBefore, 'no daemon-reload happened');
    // Many jobs at once on one connection: each waiter gets its own JobRemoved.
    // (systemd merges the starts of one unit into one job: every caller must still hear its end.)
    const results = await Promise.all(Array.from({ length: 8 }, () => m.runJob('StartUnit', `${name}.service`, { timeoutMs: 15_000 })));
    assert.deepEqual(results, new Array(8).fill('done'));
    assert.equal(await m.runJob('StopUnit', `${name}.service`), 'done');
  });

  test('errors carry the D-Bus name and a berth code', async () => {
    const m = await sd();
    await assert.rejects(m.runJob('StartUnit', 'no-such-berth-unit.service'), (e: unknown) => {
      assert.ok(isBerthError(e, 'NOT_FOUND'), String(e));
      assert.equal(dbusErrorName(e), 'org.freedesktop.systemd1.NoSuchUnit');
      return true;
    });
    await assert.rejects(m.killUnit('dbus.service', 'sideways' as 'all', 0), (e: unknown) => isBerthError(e) && /InvalidArgs/.test(dbusErrorName(e) ?? ''));
    await assert.rejects((await md()).addresses('no-such-machine'), (e: unknown) => isBerthError(e, 'NOT_FOUND'));
  });

  test('machined: ListMachines, GetMachine properties, addresses and kill agree with machinectl', async () => {
    await makeBusyboxMachine(host(), 'dbb');
    await sh('systemctl start systemd-nspawn@dbb');
    const m = await md();
    const list = await m.listMachines();
    assert.deepEqual(list.map((x) => `${x.name} ${x.class} ${x.service}`.trim()).sort(), (await sh("machinectl list --no-legend --no-pager | awk '{print $1, $2, $3}'; echo '.host host'")).trim().split('\n').map((l) => l.trim()).sort());
    const info = await m.machine('dbb');
    assert.ok(info);
    const show = Object.fromEntries((await sh('machinectl show dbb -p Leader -p Class -p Unit -p State -p RootDirectory')).trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
    assert.deepEqual({ Leader: String(info.leader), Class: info.class, Unit: info.unit, State: info.state, RootDirectory: info.rootDirectory }, show);
    assert.equal(await m.machine('no-such-machine'), undefined);
    await sh("nsenter -t $(machinectl show dbb -p Leader --value) -n sh -c 'ip link set lo up; ip addr add 10.7.7.7/32 dev lo'");
    const addrs = (await m.addresses('dbb')).map((a) => a.address);
    assert.ok(addrs.includes('10.7.7.7'), addrs.join(' '));
    await m.terminate('dbb');
    await sh('for i in $(seq 100); do machinectl show dbb >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1');
    assert.equal(await m.machine('dbb'), undefined);
  });

  test('sharedReload: ten processes-worth of reload requests cost one or two reloads', async () => {
    process.env.DBUS_SYSTEM_BUS_ADDRESS = address();
    process.env.BERTH_RUN_DIR = runDir;
    const { sharedReload } = await import('../../src/runtime/nspawn/systemd.ts');
    const before = Number((await sh("journalctl -b -o cat --no-pager | grep -c '^Reloading' || true")).trim());
    const since = Date.now();
    const r = await Promise.all(Array.from({ length: 10 }, () => sharedReload(since)));
    const after = Number((await sh("journalctl -b -o cat --no-pager | grep -c '^Reloading' || true")).trim());
    assert.equal(r.filter((x) => x === 'reloaded').length, 1, r.join(' '));
    assert.equal(after - before, 1, 'systemd logged one reload');
    assert.equal(await sharedReload(since), 'shared', 'an old request is covered by the reload that ran');
    assert.equal(await sharedReload(Date.now() + 5), 'reloaded', 'files changed after it: reload again');
  });
});
