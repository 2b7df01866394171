/**
 * Integration (igzip, zstd, real files): big layers unpack in a worker thread
 * (src/snapshot/unpack-worker.ts). The worker must give the same image as the main
 * thread, report hostile and corrupt layers with their codes, leave nothing behind when
 * its input is cut, and leave no decompressor process running.
 * BERTH_UNPACK_WORKER=1/0 forces either path whatever the layer's size.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { sha256, type Digest } from '../../src/base/digest.ts';
import { isBerthError } from '../../src/base/errors.ts';
import { run } from '../../src/base/exec.ts';
import { MT } from '../../src/oci/media-types.ts';
import { SnapshotStore } from '../../src/snapshot/store.ts';
import { rawTar } from '../raw-tar.ts';

let work: string;
let n = 0;
before(async () => {
  work = await mkdtemp('/var/tmp/berth-unpack-worker-');
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const prev = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const set = (v: Record<string, string | undefined>) => {
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) delete process.env[k];
      else process.env[k] = x;
    }
  };
  set(vars);
  return fn().finally(() => set(prev));
}

/** Chunks of `b`, like a download (the worker batches them). */
function chunked(b: Buffer, size = 20_000): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) parts.push(b.subarray(i, i + size));
  return Readable.from(parts);
}

async function unpack(store: SnapshotStore, layer: Buffer, mediaType: string, diffId: Digest, compressed: Readable = chunked(layer)): Promise<void> {
  await store.unpack({ chainId: diffId, diffId, descriptor: { mediaType, digest: sha256(layer), size: layer.length }, compressed });
}

const freshStore = () => new SnapshotStore(join(work, `s${++n}`), { format: 'erofs' });
const leftovers = async (s: SnapshotStore) => readdir(join(s.layout.root, 'work')).catch(() => [] as string[]);

async function decompressorChildren(): Promise<string[]> {
  const r = await run(['pgrep', '-P', String(process.pid), '-l'], { reject: false });
  return r.stdout.split('\n').filter((l) => /igzip|zstd/.test(l));
}

const tar = rawTar(Array.from({ length: 400 }, (_, i) => ({ name: `d${i % 9}/f${i}`, body: Buffer.alloc((i * 997) % 20_000, i) })));
const gz = gzipSync(tar);

test('worker and main thread write byte-identical images (gzip through igzip, zstd through zstd -dc)', async () => {
  const zst = await (async () => {
    const p = join(work, 'w.tar');
    await import('node:fs/promises').then((fs) => fs.writeFile(p, tar));
    await run(['zstd', '-q', '-f', p, '-o', `${p}.zst`]);
    return readFile(`${p}.zst`);
  })();
  for (const [layer, mt] of [[gz, MT.ociLayerGzip], [zst, MT.ociLayerZstd], [tar, MT.ociLayer]] as const) {
    const images: Buffer[] = [];
    for (const w of ['1', '0']) {
      const store = freshStore();
      await withEnv({ BERTH_UNPACK_WORKER: w, BERTH_GZIP: 'igzip' }, () => unpack(store, layer, mt, sha256(tar)));
      images.push(await readFile(store.layout.erofsImage(sha256(tar))));
      assert.deepEqual(await leftovers(store), []);
    }
    assert.ok(images[0]!.equals(images[1]!), `${mt}: same bytes from the worker and the main thread`);
  }
  assert.deepEqual(await decompressorChildren(), []);
});

test('worker: hostile, corrupt and mismatching layers keep their codes and leave nothing', async () => {
  await withEnv({ BERTH_UNPACK_WORKER: '1', BERTH_GZIP: 'igzip' }, async () => {
    const hostile = gzipSync(rawTar([{ name: 'a', type: '2', linkname: '/etc' }, { name: 'a/passwd', body: 'x' }]));
    let store = freshStore();
    await assert.rejects(unpack(store, hostile, MT.ociLayerGzip, sha256('x')), (e: unknown) => isBerthError(e, 'HOSTILE_LAYER') && /entry "a\/passwd"/.test((e as Error).message));
    assert.deepEqual(await leftovers(store), []);

    const bad = Buffer.from(gz);
    bad.fill(0x33, bad.length >> 1, (bad.length >> 1) + 16);
    store = freshStore();
    await assert.rejects(unpack(store, bad, MT.ociLayerGzip, sha256(tar)), (e: unknown) => isBerthError(e, 'CORRUPT') || isBerthError(e, 'DIGEST_MISMATCH'));
    assert.equal(await store.has(sha256(tar)), false);
    assert.deepEqual(await leftovers(store), []);

    store = freshStore();
    const wrong = sha256('another layer');
    await assert.rejects(unpack(store, gz, MT.ociLayerGzip, wrong), (e: unknown) => isBerthError(e, 'DIGEST_MISMATCH'));
    assert.equal(await store.has(wrong), false);

    // the byte limit is enforced in the worker too
    store = new SnapshotStore(join(work, `s${++n}`), { format: 'erofs', policy: { maxBytes: 100_000 } });
    await assert.rejects(unpack(store, gz, MT.ociLayerGzip, sha256(tar)), (e: unknown) => isBerthError(e, 'HOSTILE_LAYER'));
    assert.deepEqual(await leftovers(store), []);
  });
  assert.deepEqual(await decompressorChildren(), []);
});

test('worker: a download cut in the middle rejects, stops the worker and its igzip, and leaves no work area', async () => {
  await withEnv({ BERTH_UNPACK_WORKER: '1', BERTH_GZIP: 'igzip' }, async () => {
    const store = freshStore();
    async function* cut(): AsyncGenerator<Buffer> {
      yield gz.subarray(0, gz.length >> 1);
      await new Promise((r) => setTimeout(r, 50));
      throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    }
    const started = Date.now();
    await assert.rejects(unpack(store, gz, MT.ociLayerGzip, sha256(tar), Readable.from(cut())), (e: unknown) => isBerthError(e));
    assert.ok(Date.now() - started < 8000, 'the worker stopped at once, not by the kill timer');
    assert.equal(await store.has(sha256(tar)), false);
    assert.deepEqual(await leftovers(store), []);
  });
  // igzip is killed by the worker's pipeline teardown; give the exit a moment to be reaped
  for (let i = 0; i < 20 && (await decompressorChildren()).length; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(await decompressorChildren(), []);
});

test('worker: more compressed input than the queue holds is paced by the worker (no unbounded buffering)', async () => {
  // 40 MB of incompressible file data: the main thread must pause its input (MAX_QUEUED is
  // 8 MiB) while the worker writes, and still end with the right image
  const big = rawTar([{ name: 'blob', body: (await import('node:crypto')).randomBytes(40 << 20) }]);
  const bigGz = gzipSync(big, { level: 1 });
  const store = freshStore();
  const src = chunked(bigGz, 64 << 10);
  let pauses = 0;
  src.on('pause', () => pauses++);
  await withEnv({ BERTH_UNPACK_WORKER: '1' }, () => unpack(store, bigGz, MT.ociLayerGzip, sha256(big), src));
  assert.equal(await store.has(sha256(big)), true);
  assert.ok(pauses > 0, 'the input was paused while the worker caught up');
});
