/**
 * @module network/claims.test
 * Address claims without a lock (attach.ts): concurrent attaches in one zone get distinct
 * addresses, junk in the claims directory is ignored, --ip collisions name the owner, a
 * zone from before claims is migrated from its records, rename moves the claim and rm
 * frees it. Files only, below a BERTH_SYSTEMD_ROOT prefix; no namespace or link is made.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBerthError } from '../base/errors.ts';
import { serializeZone } from './record.ts';
import { zoneOf } from './render.ts';

test('address claims: 40 attaches at once get 40 addresses; junk ignored, --ip taken, migration, rename and rm', async (t) => {
  const { helperPath } = await import('../native/index.ts');
  try {
    helperPath();
  } catch {
    t.skip('berth-helper is not built (npm run build)');
    return;
  }
  const root = mkdtempSync(join(tmpdir(), 'berth-claims-'));
  const before = process.env.BERTH_SYSTEMD_ROOT;
  process.env.BERTH_SYSTEMD_ROOT = root;
  try {
    const { attachMachine, detachMachine, listAttachments, readAttachment, renameAttachment } = await import('./attach.ts');
    const zones = join(root, 'etc/berth/zones');
    mkdirSync(join(zones, 'cz', 'addrs'), { recursive: true });
    writeFileSync(join(zones, 'cz.zone'), serializeZone(zoneOf('cz', '10.231.0.0/24')));
    const addrs = join(zones, 'cz', 'addrs');
    // Junk a claims directory may hold: temp files, other names, a directory named like none.
    writeFileSync(join(addrs, '.claim.1.abcd.tmp'), 'x\n');
    writeFileSync(join(addrs, 'not-an-address'), 'x\n');
    writeFileSync(join(addrs, '10.231.0.2'), 'someone\n'); // taken by a machine berth does not list
    const req = { mode: 'zone' as const, zone: 'cz' };
    const names = Array.from({ length: 40 }, (_, i) => `c${i}`);
    const got = await Promise.all(names.map((n) => attachMachine(n, req)));
    const ips = got.map((a) => a?.address);
    assert.equal(new Set(ips).size, 40, 'distinct addresses');
    assert.ok(!ips.includes('10.231.0.2'), 'a claimed address is never handed out');
    for (const a of got) assert.equal(readFileSync(join(addrs, a!.address), 'utf8'), `${a!.machine}\n`);
    // --ip of a claimed address names its owner; nothing of the loser is left.
    await assert.rejects(attachMachine('dup', { ...req, ip: ips[0] }), (e) => isBerthError(e, 'ALREADY_EXISTS') && /c0/.test((e as Error).message));
    assert.equal(existsSync(join(root, 'etc/berth/machines/dup')), false);
    // rename moves the claim in place; rm frees it.
    const moved = await renameAttachment('c1', 'renamed');
    assert.equal(moved?.address, ips[1]);
    assert.equal(readFileSync(join(addrs, ips[1]!), 'utf8'), 'renamed\n');
    await detachMachine('renamed');
    assert.equal(existsSync(join(addrs, ips[1]!)), false, 'rm frees the address');
    assert.equal((await attachMachine('again', req))?.address, ips[1], 'and the next create gets it');
    // A zone from before claims: its addrs/ is made from the records, once.
    rmSync(addrs, { recursive: true });
    const fresh = await attachMachine('late', req);
    const claimed = readdirSync(addrs).filter((f) => /^\d/.test(f));
    assert.equal(claimed.length, (await listAttachments()).length, 'one claim per record');
    assert.ok(!got.some((a) => a?.address === fresh?.address), 'a migrated zone still hands out free addresses only');
    // A create killed after its claim and before its record: rm still frees the claim.
    mkdirSync(join(root, 'etc/berth/machines/killed'), { recursive: true });
    writeFileSync(join(addrs, '10.231.0.250'), 'killed\n');
    assert.equal(await readAttachment('killed'), undefined);
    await detachMachine('killed');
    assert.equal(existsSync(join(addrs, '10.231.0.250')), false);
  } finally {
    if (before === undefined) delete process.env.BERTH_SYSTEMD_ROOT;
    else process.env.BERTH_SYSTEMD_ROOT = before;
    rmSync(root, { recursive: true, force: true });
  }
});
