import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir, hostname } from 'node:os';
import { join } from 'node:path';
import { sha256 } from '../base/digest.ts';
import { Leases } from './lease.ts';
import { openStore } from './local-store.ts';
import { gcBlobs } from './gc.ts';

test('a lease holds digests and chain IDs until released; dead owners are ignored and removed', async () => {
  const root = await mkdtemp(join(tmpdir(), 'berth-lease-'));
  try {
    const leases = new Leases(root);
    const a = sha256('a');
    const c = sha256('chain');
    const lease = await leases.create('pull test');
    await lease.add({ digests: [a], chainIds: [c] });
    let held = await leases.withPruneLock(() => leases.held());
    assert.deepEqual([...held.digests], [a]);
    assert.deepEqual([...held.chainIds], [c]);
    // a lease left by a process that died (pid far beyond pid_max)
    await mkdir(leases.dir, { recursive: true });
    const dead = join(leases.dir, '99999999-dead.json');
    await writeFile(dead, JSON.stringify({ pid: 99_999_999, start: '1', host: hostname(), digests: [sha256('b')], chainIds: [] }));
    await writeFile(join(leases.dir, 'junk.json'), '{not json');
    held = await leases.held();
    assert.equal(held.digests.has(sha256('b')), false);
    assert.ok(!(await readdir(leases.dir)).includes('99999999-dead.json'), 'dead lease removed');
    await lease.release();
    await lease.release();
    held = await leases.held();
    assert.equal(held.digests.size, 0);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('gc keeps unreachable blobs that a lease holds', async () => {
  const root = await mkdtemp(join(tmpdir(), 'berth-lease-gc-'));
  try {
    const store = await openStore(root);
    const kept = await store.putBlob(Buffer.from('held by a pull'));
    const gone = await store.putBlob(Buffer.from('nobody wants me'));
    const r = await gcBlobs(store, [], { minAgeMs: 0, keep: new Set([kept]) });
    assert.deepEqual(r.removed, [gone]);
    assert.equal(await store.has(kept), true);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
