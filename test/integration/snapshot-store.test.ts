/**
 * Integration (root): the snapshot store's bookkeeping: one unpack for concurrent pulls of a
 * layer, fsck check/rebuild, crash leftovers swept, zstd layers, shared EROFS layer mounts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { run } from '../../src/base/exec.ts';
import { sha256, type Digest } from '../../src/base/digest.ts';
import { MT } from '../../src/oci/media-types.ts';
import { SnapshotStore } from '../../src/snapshot/store.ts';
import { mountImage, umountImage } from '../../src/snapshot/mount.ts';
import type { SnapshotFormat } from '../../src/snapshot/types.ts';
import { compareTrees } from '../tree-compare.ts';
import { buildLayout, type BuiltImage } from './snapshot-helpers.ts';

let work: string;
let img: BuiltImage;
let tarBuf: Buffer;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'berth-snapstore-'));
  await mkdir(join(work, 'src/etc'), { recursive: true });
  await writeFile(join(work, 'src/etc/hello'), 'hello\n');
  await run(['bash', '-c', `cp /bin/busybox ${work}/src/busybox && tar --format=pax -C ${work}/src -cf ${work}/l.tar etc busybox && gzip -kn ${work}/l.tar && zstd -q ${work}/l.tar -o ${work}/l.tar.zst`]);
  tarBuf = await readFile(join(work, 'l.tar'));
  img = await buildLayout(join(work, 'layout'), [await readFile(join(work, 'l.tar.gz'))]);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

function req(chainId: Digest, file = 'l.tar.gz', mediaType: string = MT.ociLayerGzip) {
  return { chainId, diffId: sha256(tarBuf), descriptor: { mediaType, digest: sha256('x'), size: 1 }, compressed: createReadStream(join(work, file)) };
}

for (const format of ['dir', 'erofs'] as SnapshotFormat[]) {
  test(`${format}: concurrent unpacks of one layer make one snapshot`, async () => {
    const store = new SnapshotStore(join(work, `c-${format}`), { format });
    const id = img.chainIds[0] as Digest;
    await Promise.all([store.unpack(req(id)), store.unpack(req(id)), store.unpack(req(id))]);
    assert.equal((await store.list()).length, 1);
    assert.deepEqual(await store.check(id), { chainId: id, ok: true });
  });

  test(`${format}: check finds damage, rebuild repairs it`, async () => {
    const store = new SnapshotStore(join(work, `r-${format}`), { format });
    const id = img.chainIds[0] as Digest;
    await store.unpack(req(id));
    if (format === 'dir') await unlink(join(store.layout.dirSnapshot(id), 'meta.json'));
    else await truncate(store.layout.erofsImage(id), 5000);
    const bad = await store.check(id);
    assert.equal(bad.ok, false);
    assert.equal(bad.problem, format === 'dir' ? 'incomplete' : 'corrupt');
    await store.rebuild(id, { diffId: sha256(tarBuf), descriptor: req(id).descriptor, compressed: req(id).compressed });
    assert.deepEqual(await store.check(id), { chainId: id, ok: true });
    await store.remove(id);
    assert.deepEqual(await store.check(id), { chainId: id, ok: false, problem: 'missing' });
  });

  test(`${format}: zstd and uncompressed layers give the same tree as gzip`, async () => {
    const root = join(work, `z-${format}`);
    const trees: string[] = [];
    for (const [file, mt] of [['l.tar.gz', MT.ociLayerGzip], ['l.tar.zst', MT.ociLayerZstd], ['l.tar', MT.ociLayer]] as const) {
      const store = new SnapshotStore(join(root, file), { format });
      const id = img.chainIds[0] as Digest;
      await store.unpack(req(id, file, mt));
      const t = join(root, `${file}-mnt`);
      await mountImage(store, [id], t);
      trees.push(t);
    }
    try {
      assert.deepEqual(await compareTrees(trees[0] as string, trees[1] as string), []);
      assert.deepEqual(await compareTrees(trees[0] as string, trees[2] as string), []);
    } finally {
      for (const [i, f] of ['l.tar.gz', 'l.tar.zst', 'l.tar'].entries()) await umountImage(new SnapshotStore(join(root, f), { format }), trees[i] as string);
    }
  });
}

test('erofs: a layer mount is shared by overlays and released with the last one', async () => {
  const store = new SnapshotStore(join(work, 'share'), { format: 'erofs' });
  const id = img.chainIds[0] as Digest;
  await store.unpack(req(id));
  const a = await mountImage(store, [id], join(work, 'share-a'));
  const b = await mountImage(store, [id], join(work, 'share-b'));
  const mounted = async (): Promise<boolean> => (await readFile('/proc/self/mountinfo', 'utf8')).includes(store.layout.mountPoint(id));
  const { mountAt } = await import('../../src/snapshot/mountinfo.ts');
  assert.equal((await mountAt(store.layout.mountPoint(id)))?.source, store.layout.erofsImage(id), 'file-backed, no loop device');
  await umountImage(store, a);
  assert.equal(await mounted(), true, 'still used by b');
  assert.equal((await run(['chroot', b, '/busybox', 'cat', '/etc/hello'])).stdout, 'hello\n');
  await umountImage(store, b);
  assert.equal(await mounted(), false, 'released');
});

test('sweepWork removes work areas of dead unpacks, and a crash never shows a snapshot', async () => {
  const store = new SnapshotStore(join(work, 'sweep'), { format: 'dir' });
  const id = img.chainIds[0] as Digest;
  const active = await store.snapshotter().prepare(id); // as if we crashed mid-unpack
  await writeFile(join(active.dir, 'half'), 'x');
  assert.equal(await store.has(id), false);
  assert.equal(await store.sweepWork(), 1);
  await store.unpack({ ...req(id), compressed: Readable.from([await readFile(join(work, 'l.tar.gz'))]) });
  assert.equal(await store.has(id), true);
});

test('GNU-format tars (long names/links as L/K headers) unpack like plain GNU tar; old GNU sparse is UNSUPPORTED', async () => {
  const dir = join(work, 'gnu');
  const long = `${'d'.repeat(120)}/${'n'.repeat(150)}`;
  await run(['bash', '-c', `set -e; mkdir -p ${dir}/src/${long.split('/')[0]}; cd ${dir}/src; echo x > ${long}; ln -s ${long} ${'s'.repeat(110)};
    ln ${long} ${'h'.repeat(120)}; tar --format=gnu --numeric-owner -cf ../l.tar *; mkdir ../ref; tar -C ../ref -xpf ../l.tar;
    truncate -s 10M sparse; echo end >> sparse; tar --format=gnu --sparse -cf ../s.tar sparse`]);
  const t = await readFile(join(dir, 'l.tar'));
  const store = new SnapshotStore(join(dir, 'store'), { format: 'dir' });
  const d = sha256(t);
  await store.unpack({ chainId: d, diffId: d, descriptor: { mediaType: MT.ociLayer, digest: d, size: t.length }, compressed: Readable.from([t]) });
  assert.deepEqual(await compareTrees(store.layout.dirLower(d), join(dir, 'ref'), { hardlinks: true }), []);
  const s = await readFile(join(dir, 's.tar'));
  const sd = sha256(s);
  await assert.rejects(
    store.unpack({ chainId: sd, diffId: sd, descriptor: { mediaType: MT.ociLayer, digest: sd, size: s.length }, compressed: Readable.from([s]) }),
    { code: 'UNSUPPORTED' },
  );
  assert.equal(await store.has(sd), false);
});
