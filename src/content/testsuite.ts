/**
 * @module content/testsuite
 * Conformance suite every ContentStore implementation must pass (containerd's
 * core/content/testsuite, Hono's shared router cases). Call it from the implementation's
 * test file with a factory returning a fresh, empty store.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { sha256 } from '../base/digest.ts';
import { isBerthError } from '../base/errors.ts';
import { MT } from '../oci/media-types.ts';
import type { Descriptor } from '../oci/types.ts';
import type { ContentStore } from './types.ts';

export type StoreFactory = () => Promise<ContentStore>;

async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

function desc(data: Buffer, mediaType: string = MT.ociLayer): Descriptor {
  return { mediaType, digest: sha256(data), size: data.length };
}

/** Writes data in chunks through an ingest and commits it. */
export async function ingestBuffer(store: ContentStore, data: Buffer, from = 0): Promise<void> {
  const w = await store.ingest(desc(data));
  if (w.committed) return;
  assert.equal(w.offset, from);
  const chunks = function* (): Generator<Buffer> {
    for (let i = w.offset; i < data.length; i += 4096) yield data.subarray(i, Math.min(data.length, i + 4096));
  };
  await pipeline(Readable.from(chunks()), w.stream);
  await w.commit();
}

export function runContentStoreSuite(name: string, factory: StoreFactory): void {
  describe(`ContentStore conformance: ${name}`, () => {
    test('putBlob, has, info, readBlob, readJSON, openRead', async () => {
      const s = await factory();
      const json = Buffer.from(JSON.stringify({ hello: 'world' }));
      const d = await s.putBlob(json);
      assert.equal(d, sha256(json));
      assert.equal(await s.has(d), true);
      assert.deepEqual(await s.info(d), { digest: d, size: json.length });
      assert.deepEqual(await s.readBlob(d), json);
      assert.deepEqual(await s.readJSON(d), { hello: 'world' });
      assert.deepEqual(await readAll(s.openRead(d, { start: 3 })), json.subarray(3));
      assert.equal(await s.putBlob(json, desc(json)), d, 'idempotent');
    });

    test('missing blobs are NOT_FOUND', async () => {
      const s = await factory();
      const d = sha256('nope');
      assert.equal(await s.has(d), false);
      assert.equal(await s.info(d), undefined);
      await assert.rejects(s.readBlob(d), (e) => isBerthError(e, 'NOT_FOUND'));
      await assert.rejects(readAll(s.openRead(d)), (e) => isBerthError(e, 'NOT_FOUND'));
      await assert.rejects(s.delete(d), (e) => isBerthError(e, 'NOT_FOUND'));
    });

    test('putBlob rejects data that does not match the expected descriptor', async () => {
      const s = await factory();
      const data = Buffer.from('abc');
      await assert.rejects(s.putBlob(data, { digest: sha256('abd'), size: 3 }), (e) => isBerthError(e, 'DIGEST_MISMATCH'));
      assert.equal(await s.has(sha256(data)), false);
    });

    test('ingest commits a streamed blob; nothing is visible before commit', async () => {
      const s = await factory();
      const data = randomBytes(300_000);
      const w = await s.ingest(desc(data));
      assert.equal(w.committed, false);
      assert.equal(w.offset, 0);
      w.stream.write(data.subarray(0, 1000));
      assert.equal(await s.has(sha256(data)), false);
      w.stream.end(data.subarray(1000));
      await w.commit();
      assert.deepEqual(await s.readBlob(sha256(data)), data);
      const again = await s.ingest(desc(data));
      assert.equal(again.committed, true);
    });

    test('digest mismatch on commit: DIGEST_MISMATCH with both digests, nothing kept', async () => {
      const s = await factory();
      const data = randomBytes(10_000);
      const wrong = Buffer.from(data);
      wrong[5] = wrong[5]! ^ 0xff;
      const w = await s.ingest(desc(data));
      w.stream.end(wrong);
      await assert.rejects(w.commit(), (e) => {
        assert.ok(isBerthError(e, 'DIGEST_MISMATCH'));
        assert.equal(e.details.expected, sha256(data));
        assert.equal(e.details.actual, sha256(wrong));
        return true;
      });
      assert.equal(await s.has(sha256(data)), false);
      const w2 = await s.ingest(desc(data));
      assert.equal(w2.offset, 0, 'partial was deleted');
      await w2.abort();
    });

    test('size mismatch (short write) is DIGEST_MISMATCH', async () => {
      const s = await factory();
      const data = randomBytes(1000);
      const w = await s.ingest(desc(data));
      w.stream.end(data.subarray(0, 999));
      await assert.rejects(w.commit(), (e) => isBerthError(e, 'DIGEST_MISMATCH') && e.details.actualSize === 999);
    });

    test('abort(true) keeps the partial; the next ingest resumes from its size', async () => {
      const s = await factory();
      const data = randomBytes(100_000);
      const w = await s.ingest(desc(data));
      await new Promise<void>((resolve, reject) => w.stream.write(data.subarray(0, 40_000), (e) => (e ? reject(e) : resolve())));
      await w.abort(true);
      assert.equal(await s.has(sha256(data)), false);
      await ingestBuffer(s, data, 40_000);
      assert.deepEqual(await s.readBlob(sha256(data)), data);
    });

    test('abort() drops the partial', async () => {
      const s = await factory();
      const data = randomBytes(5000);
      const w = await s.ingest(desc(data));
      w.stream.write(data.subarray(0, 100));
      await w.abort();
      const w2 = await s.ingest(desc(data));
      assert.equal(w2.offset, 0);
      await w2.abort();
    });

    test('concurrent ingests of one digest: the second waits and finds it committed', async () => {
      const s = await factory();
      const data = randomBytes(50_000);
      const w1 = await s.ingest(desc(data));
      let secondResolved = false;
      const second = s.ingest(desc(data)).then((w) => {
        secondResolved = true;
        return w;
      });
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(secondResolved, false, 'second ingest waits for the first');
      w1.stream.end(data);
      await w1.commit();
      const w2 = await second;
      assert.equal(w2.committed, true);
    });

    test('walk lists committed blobs; delete removes one', async () => {
      const s = await factory();
      const a = await s.putBlob(Buffer.from('a'));
      const b = await s.putBlob(Buffer.from('bb'));
      const pending = await s.ingest(desc(Buffer.from('ccc')));
      pending.stream.write(Buffer.from('c'));
      const all = (await collect(s.walk())).sort((x, y) => x.digest.localeCompare(y.digest));
      assert.deepEqual(all, [{ digest: a, size: 1 }, { digest: b, size: 2 }].sort((x, y) => x.digest.localeCompare(y.digest)));
      await pending.abort();
      await s.delete(a);
      assert.deepEqual((await collect(s.walk())).map((x) => x.digest), [b]);
    });

    test('refs: set, get, list, replace, delete', async () => {
      const s = await factory();
      const m1 = desc(Buffer.from('m1'), MT.ociManifest);
      const m2: Descriptor = { ...desc(Buffer.from('m2'), MT.ociManifest), annotations: { 'x.y': 'z' } };
      assert.deepEqual(await s.listRefs(), []);
      await s.setRef('docker.io/library/busybox:latest', m1);
      await s.setRef('docker.io/library/alpine:3', m1);
      assert.deepEqual(await s.getRef('docker.io/library/busybox:latest'), m1);
      await s.setRef('docker.io/library/busybox:latest', m2);
      assert.deepEqual(await s.getRef('docker.io/library/busybox:latest'), m2);
      const names = (await s.listRefs()).map((r) => r.name).sort();
      assert.deepEqual(names, ['docker.io/library/alpine:3', 'docker.io/library/busybox:latest']);
      assert.equal(await s.deleteRef('docker.io/library/alpine:3'), true);
      assert.equal(await s.deleteRef('docker.io/library/alpine:3'), false);
      assert.equal(await s.getRef('docker.io/library/alpine:3'), undefined);
    });

    test('refs: concurrent setRefs are not lost; setRef inside withIndexLock works', async () => {
      const s = await factory();
      const m = desc(Buffer.from('m'), MT.ociManifest);
      await Promise.all(Array.from({ length: 8 }, (_, i) => s.setRef(`r${i}`, m)));
      await s.withIndexLock(async () => {
        await Promise.all([s.setRef('inner-a', m), s.setRef('inner-b', m)]);
      });
      assert.equal((await s.listRefs()).length, 10);
    });
  });
}
