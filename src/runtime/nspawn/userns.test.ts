import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseIdMap, parseSubIdFile, pickRange, rangesInUse, takenRanges, RANGE_SIZE } from './userns.ts';

test('subuid/subgid lines and uid_map lines parse; junk and the initial namespace are skipped', () => {
  assert.deepEqual(parseSubIdFile('tuser:100000:65536\n# c\nbad\nx:1:\n  y:200000:10  \n'), [{ base: 100000, size: 65536 }, { base: 200000, size: 10 }]);
  assert.deepEqual(parseIdMap('         0          0 4294967295\n'), []);
  assert.deepEqual(parseIdMap('         0   32309248      65536\n'), [{ base: 32309248, size: 65536 }]);
  assert.deepEqual(parseIdMap('0 1000 1\n1 100000 65535\nnot a map\n'), [{ base: 1000, size: 1 }, { base: 100000, size: 65535 }]);
});

test('pickRange skips every taken range, including partial overlaps', () => {
  const first = pickRange('web', []);
  assert.equal(first.size, RANGE_SIZE);
  assert.equal(first.base % RANGE_SIZE, 0);
  const second = pickRange('web', [{ base: first.base + 5, size: 1 }]);
  assert.notEqual(second.base, first.base);
  const many = [first, second].concat(Array.from({ length: 50 }, (_, i) => ({ base: second.base + (i + 1) * RANGE_SIZE, size: RANGE_SIZE })));
  const r = pickRange('web', many);
  assert.ok(many.every((t) => r.base >= t.base + t.size || t.base >= r.base + r.size));
});

test('rangesInUse reads nspawn lock files and process maps; takenRanges reads .nspawn files', async () => {
  const d = mkdtempSync(join(tmpdir(), 'berth-userns-'));
  try {
    mkdirSync(join(d, 'proc', '42'), { recursive: true });
    mkdirSync(join(d, 'proc', '43'), { recursive: true });
    mkdirSync(join(d, 'proc', 'self'), { recursive: true });
    writeFileSync(join(d, 'proc', '42', 'uid_map'), '0 524288 65536\n');
    writeFileSync(join(d, 'proc', '42', 'gid_map'), '0 524288 65536\n');
    writeFileSync(join(d, 'proc', '43', 'uid_map'), '0 0 4294967295\n');
    mkdirSync(join(d, 'locks'));
    writeFileSync(join(d, 'locks', '1048576'), '');
    writeFileSync(join(d, 'locks', 'junk'), '');
    const inUse = await rangesInUse(join(d, 'proc'), join(d, 'locks'));
    assert.deepEqual(inUse.sort((a, b) => a.base - b.base), [{ base: 524288, size: 65536 }, { base: 1048576, size: RANGE_SIZE }]);
    mkdirSync(join(d, 'nspawn'));
    writeFileSync(join(d, 'nspawn', 'a.nspawn'), '[Exec]\nPrivateUsers=655360:65536\n');
    writeFileSync(join(d, 'nspawn', 'b.nspawn'), '[Exec]\nPrivateUsers=pick\n');
    writeFileSync(join(d, 'nspawn', 'c.txt'), 'PrivateUsers=1:1\n');
    const taken = await takenRanges(join(d, 'nspawn'));
    assert.ok(taken.some((r) => r.base === 655360 && r.size === 65536));
    assert.ok(!taken.some((r) => r.base === 1));
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('range claims: one winner per base, stale claims taken over, release frees', async () => {
  const { claimRange, claimedRanges, pickAndClaimRange, releaseRange } = await import('./userns.ts');
  const d = mkdtempSync(join(tmpdir(), 'berth-claims-'));
  try {
    const r = { base: 0x100000, size: RANGE_SIZE };
    const wins = await Promise.all(Array.from({ length: 20 }, (_, i) => claimRange(r, `m${i}`, d)));
    assert.equal(wins.filter(Boolean).length, 1, 'exactly one creator owns a base');
    assert.deepEqual(await claimedRanges(d), [r]);
    // A claim by a dead process is stale: ignored and taken over.
    writeFileSync(join(d, '2097152'), JSON.stringify({ name: 'dead', pid: 2 ** 22 + 12345, start: '1' }));
    assert.deepEqual((await claimedRanges(d)).map((x) => x.base), [r.base]);
    assert.equal(await claimRange({ base: 2097152, size: RANGE_SIZE }, 'new', d), true);
    // 30 concurrent picks for the same name hash: 30 distinct ranges.
    const picks = await Promise.all(Array.from({ length: 30 }, () => pickAndClaimRange('same', [], d)));
    assert.equal(new Set(picks.map((p) => p.base)).size, 30);
    await releaseRange(r.base, d);
    assert.ok(!(await claimedRanges(d)).some((x) => x.base === r.base));
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('rangesInUse reads the maps once per user namespace and never those of its own namespace', async () => {
  const { symlinkSync } = await import('node:fs');
  const d = mkdtempSync(join(tmpdir(), 'berth-userns-ns-'));
  try {
    const proc = (pid: string, ns: string, map?: string): void => {
      mkdirSync(join(d, 'proc', pid, 'ns'), { recursive: true });
      symlinkSync(ns, join(d, 'proc', pid, 'ns', 'user'));
      if (map !== undefined) {
        writeFileSync(join(d, 'proc', pid, 'uid_map'), map);
        writeFileSync(join(d, 'proc', pid, 'gid_map'), map);
      }
    };
    proc('self', 'user:[1]');
    proc('10', 'user:[1]', '0 1048576 65536\n'); // our namespace: its maps are not read
    proc('11', 'user:[2]', '0 524288 65536\n');
    proc('12', 'user:[2]', '0 524288 65536\n'); // same namespace as 11
    proc('13', 'user:[3]', '0 655360 65536\n');
    mkdirSync(join(d, 'proc', '14')); // exited, or no ns link: skipped
    const got = (await rangesInUse(join(d, 'proc'), join(d, 'none'))).map((r) => r.base).sort((a, b) => a - b);
    assert.deepEqual(got, [524288, 655360]);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
