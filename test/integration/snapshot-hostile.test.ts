/**
 * Integration (root): hostile layers, built here as raw tar streams (tar-stream pack lets
 * us write any header), must fail with HOSTILE_LAYER, leave no snapshot and no work area,
 * and change nothing outside the store (a canary tree and /etc/passwd are compared).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { pack, type Header } from 'tar-stream';
import { sha256, type Digest } from '../../src/base/digest.ts';
import { isBerthError } from '../../src/base/errors.ts';
import { run } from '../../src/base/exec.ts';
import { MT } from '../../src/oci/media-types.ts';
import { SnapshotStore } from '../../src/snapshot/store.ts';
import type { ExtractPolicy, SnapshotFormat } from '../../src/snapshot/types.ts';

type Entry = Partial<Header> & { name: string; body?: string };

let base: string;
let victim: string;

function tarOf(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (b: unknown) => {
    chunks.push(b as Buffer);
  });
  const done = new Promise<Buffer>((res) => p.on('end', () => res(Buffer.concat(chunks))));
  for (const { body, ...h } of entries) p.entry({ mode: 0o644, ...h }, body ?? '');
  p.finalize();
  return done;
}

/** A minimal ustar header for a regular file (the bomb generator writes tars by hand). */
function ustarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0' + '00', 257);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

async function listing(): Promise<string> {
  const r = await run(['find', base, '-path', join(base, 'store*'), '-prune', '-o', '-printf', '%p %y %m %s %l\n']);
  const passwd = createHash('sha256').update(await readFile('/etc/passwd')).digest('hex');
  return `${r.stdout.split('\n').sort().join('\n')}\npasswd ${passwd}`;
}

async function expectHostile(format: SnapshotFormat, tar: Buffer | Readable, policy: Partial<ExtractPolicy> = {}, code = 'HOSTILE_LAYER'): Promise<Error> {
  const before = await listing();
  const root = join(base, `store-${format}`);
  const store = new SnapshotStore(root, { format, policy });
  const buf = Buffer.isBuffer(tar) ? tar : undefined;
  const diffId = buf ? sha256(buf) : (`sha256:${'0'.repeat(64)}` as Digest);
  const chainId = diffId;
  let err: unknown;
  try {
    await store.unpack({
      chainId, diffId,
      descriptor: { mediaType: MT.ociLayer, digest: diffId, size: buf?.length ?? 0 },
      compressed: buf ? Readable.from([buf]) : (tar as Readable),
    });
  } catch (e) {
    err = e;
  }
  assert.ok(isBerthError(err), `expected a BerthError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  assert.equal(await store.has(chainId), false);
  assert.deepEqual(await readdir(join(root, 'work')).catch(() => []), [], 'work area removed');
  assert.deepEqual(await store.list(), []);
  assert.equal(await listing(), before, 'nothing outside the store changed');
  return err;
}

async function expectOk(format: SnapshotFormat, tar: Buffer): Promise<void> {
  const before = await listing();
  const store = new SnapshotStore(join(base, `store-ok-${format}`), { format });
  const d = sha256(tar);
  await store.unpack({ chainId: d, diffId: d, descriptor: { mediaType: MT.ociLayer, digest: d, size: tar.length }, compressed: Readable.from([tar]) });
  assert.equal(await store.has(d), true);
  assert.equal(await listing(), before, 'nothing outside the store changed');
  await store.remove(d);
}

before(async () => {
  base = await mkdtemp(join(tmpdir(), 'berth-hostile-'));
  victim = join(base, 'victimdir');
  await mkdir(join(victim, 'sub'), { recursive: true });
  await writeFile(join(victim, 'keep'), 'canary\n');
});

after(async () => {
  await rm(base, { recursive: true, force: true });
});

const cases: Array<[string, () => Entry[], Partial<ExtractPolicy>?]> = [
  ['../evil', () => [{ name: '../evil', body: 'x' }]],
  ['a/../../evil (inner ..)', () => [{ name: 'a/', type: 'directory', mode: 0o755 }, { name: 'a/../../evil', body: 'x' }]],
  ['symlink to absolute dir, then write through it', () => [
    { name: 'a', type: 'symlink', linkname: victim }, { name: 'a/pwned', body: 'x' }]],
  ['symlink ../../.., then write through it', () => [
    { name: 'a', type: 'symlink', linkname: '../../..' }, { name: 'a/x', body: 'x' }]],
  ['hardlink to /etc/passwd', () => [{ name: 'h', type: 'link', linkname: '/etc/passwd' }]],
  ['hardlink to ../outside', () => [{ name: 'h', type: 'link', linkname: '../outside' }]],
  ['hardlink to a later entry', () => [{ name: 'h', type: 'link', linkname: 'f' }, { name: 'f', body: 'x' }]],
  ['symlink loop, then write through it', () => [
    { name: 'a', type: 'symlink', linkname: 'b' }, { name: 'b', type: 'symlink', linkname: 'a' }, { name: 'a/x', body: 'x' }]],
  ['directory replaced by a symlink, then written beneath', () => [
    { name: 'd/', type: 'directory', mode: 0o755 }, { name: 'd', type: 'symlink', linkname: victim }, { name: 'd/f', body: 'x' }]],
  ['directory replaced by a symlink, then hardlink to a file that was below it', () => [
    { name: 'd/', type: 'directory', mode: 0o755 }, { name: 'd/f', body: 'x' }, { name: 'd', type: 'symlink', linkname: victim },
    { name: 'h', type: 'link', linkname: 'd/f' }]],
  ['directory over a symlink', () => [{ name: 'd', type: 'symlink', linkname: victim }, { name: 'd/', type: 'directory', mode: 0o777 }]],
  ['whiteout through a symlink', () => [{ name: 'd', type: 'symlink', linkname: victim }, { name: 'd/.wh.keep', body: '' }]],
  ['opaque marker through a symlink', () => [{ name: 'd', type: 'symlink', linkname: victim }, { name: 'd/.wh..wh..opq', body: '' }]],
  // issue 7, item 1: the whiteout was applied through the later symlink (both formats)
  ['d/, d/.wh.keep, then d -> host dir', () => [
    { name: 'd/', type: 'directory', mode: 0o755 }, { name: 'd/.wh.keep', body: '' }, { name: 'd', type: 'symlink', linkname: victim }]],
  ['d/.wh.keep (implied parent), then d -> host dir', () => [{ name: 'd/.wh.keep', body: '' }, { name: 'd', type: 'symlink', linkname: victim }]],
  ['d/, opaque marker, then d -> host dir', () => [
    { name: 'd/', type: 'directory', mode: 0o755 }, { name: 'd/.wh..wh..opq', body: '' }, { name: 'd', type: 'symlink', linkname: victim }]],
  ['d/sub/.wh.keep, then d -> host dir', () => [{ name: 'd/sub/.wh.keep', body: '' }, { name: 'd', type: 'symlink', linkname: victim }]],
  ['d/, d/.wh.keep, then d replaced by a file', () => [
    { name: 'd/', type: 'directory', mode: 0o755 }, { name: 'd/.wh.keep', body: '' }, { name: 'd', body: 'x' }]],
  ['d/f, hardlink to it, then d -> host dir', () => [
    { name: 'd/f', body: 'x' }, { name: 'h', type: 'link', linkname: 'd/f' }, { name: 'd', type: 'symlink', linkname: victim }]],
  ['whiteout below a regular file', () => [{ name: 'f', body: 'x' }, { name: 'f/.wh.keep', body: '' }]],
  ['whiteout through a relative symlink ../../..', () => [{ name: 'up', type: 'symlink', linkname: '../../..' }, { name: 'up/.wh.keep', body: '' }]],
  ['entry below a whiteout name', () => [{ name: '.wh.d/x', body: 'x' }]],
  ['char device in rootless mode', () => [{ name: 'null', type: 'character-device', devmajor: 1, devminor: 3 }], { allowDevices: false }],
  ['block device in rootless mode', () => [{ name: 'sda', type: 'block-device', devmajor: 8, devminor: 0 }], { allowDevices: false }],
  ['too many entries', () => Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, body: '' })), { maxEntries: 10 }],
  ['file larger than the limit', () => [{ name: 'big', body: 'x'.repeat(4096) }], { maxBytes: 1024 }],
];

for (const format of ['dir', 'erofs'] as SnapshotFormat[]) {
  for (const [name, entries, policy] of cases) {
    test(`${format}: ${name} → HOSTILE_LAYER`, async () => {
      const e = await expectHostile(format, await tarOf(entries()), policy);
      assert.match(e.message, /entry "|limit/);
    });
  }

  for (const [kind, engine] of [['tar of 1 MiB zero files', 'igzip'], ['raw zeros', 'igzip'], ['tar of 1 MiB zero files', 'node']] as const) {
    test(`${format}: gzip bomb (${kind}, GBs from a generator, ${engine}) stops at the limit`, async (t) => {
      // small layers inflate with node:zlib by default; both engines must stop the bomb
      const prev = process.env.BERTH_GZIP;
      process.env.BERTH_GZIP = engine;
      t.after(() => {
        if (prev === undefined) delete process.env.BERTH_GZIP;
        else process.env.BERTH_GZIP = prev;
      });
      const limit = 32 * 1024 * 1024;
      let produced = 0;
      async function* bomb(): AsyncGenerator<Buffer> {
        const mb = Buffer.alloc(1 << 20);
        for (let i = 0; i < 4096; i++) {
          if (kind !== 'raw zeros') yield ustarHeader(`f${i}`, mb.length);
          produced += mb.length;
          yield mb; // 4 GiB if nobody stopped us
        }
      }
      const gz = Readable.from(bomb()).pipe(createGzip({ level: 1 }));
      const root = join(base, `store-bomb-${format}-${engine}`);
      const store = new SnapshotStore(root, { format, policy: { maxBytes: limit } });
      const d = `sha256:${'1'.repeat(64)}` as Digest;
      await assert.rejects(
        store.unpack({ chainId: d, diffId: d, descriptor: { mediaType: MT.ociLayerGzip, digest: d, size: 1 }, compressed: gz }),
        (e: unknown) => isBerthError(e, 'HOSTILE_LAYER'),
      );
      // The generator's zeros compress ~1000:1, so every KiB of compressed read-ahead is a
      // MiB here: the igzip child holds a pipe's and its own input buffer's worth (~250 KiB
      // compressed, ~250 MiB of zeros) when the limit stops it. What matters is that it
      // stops far before the 4 GiB and that nothing beyond the limit is written.
      assert.ok(produced < 16 * limit, `stopped early (${produced} bytes produced)`);
      assert.equal(await store.has(d), false);
      assert.deepEqual(await readdir(join(root, 'work')).catch(() => []), []);
    });
  }

  test(`${format}: a 1 TiB sparse header is a bomb too`, async () => {
    const t = await tarOf([{ name: 'GNUSparseFile.0/s', body: '', pax: { 'GNU.sparse.name': 's', 'GNU.sparse.realsize': String(2 ** 40), 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0' } } as Entry]);
    await expectHostile(format, t, { maxBytes: 2 ** 30 });
  });

  test(`${format}: absolute and ./ names are normalised, bare symlink loops and outward symlinks are kept as links`, async () => {
    await expectOk(format, await tarOf([
      { name: '/abs/evil', body: 'x' }, { name: './dot/f', body: 'y' },
      { name: 'loop1', type: 'symlink', linkname: 'loop2' }, { name: 'loop2', type: 'symlink', linkname: 'loop1' },
      { name: 'out', type: 'symlink', linkname: victim }, { name: 'up', type: 'symlink', linkname: '../../../..' },
      { name: 'f', body: 'z' }, { name: 'h', type: 'link', linkname: '/f' }, { name: 'null0', type: 'character-device', devmajor: 0, devminor: 0 },
    ]));
  });

  test(`${format}: wrong diff ID → DIGEST_MISMATCH, nothing kept`, async () => {
    const t = await tarOf([{ name: 'f', body: 'x' }]);
    const root = join(base, `store-dm-${format}`);
    const store = new SnapshotStore(root, { format });
    const wrong = sha256('not this');
    await assert.rejects(
      store.unpack({ chainId: wrong, diffId: wrong, descriptor: { mediaType: MT.ociLayer, digest: sha256(t), size: t.length }, compressed: Readable.from([t]) }),
      (e: unknown) => isBerthError(e, 'DIGEST_MISMATCH'),
    );
    assert.equal(await store.has(wrong), false);
    assert.deepEqual(await readdir(join(root, 'work')).catch(() => []), []);
  });
}
