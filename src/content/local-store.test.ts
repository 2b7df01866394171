/**
 * @module content/local-store.test
 * The conformance suite against the local store, plus what only an on-disk OCI layout
 * has: file modes, foreign index.json content, cross-process ingest and resume, fsck, gc.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, stat, writeFile, utimes, readdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256 } from '../base/digest.ts';
import { acquireLock } from '../base/lock.ts';
import { MT } from '../oci/media-types.ts';
import { REF_NAME_ANNOTATION, type Descriptor, type Manifest } from '../oci/types.ts';
import { openStore } from './local-store.ts';
import { runContentStoreSuite } from './testsuite.ts';
import { fsckBlobs } from './fsck.ts';
import { gcBlobs } from './gc.ts';

const STORE_TS = fileURLToPath(new URL('./local-store.ts', import.meta.url));

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'berth-store-'));
}

runContentStoreSuite('local', async () => openStore(await tmp()));

/** Runs a child node process with the store module path as argv[1]; resolves with stdout. */
function child(script: string, args: string[]): Promise<{ code: number | null; signal: string | null; out: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, STORE_TS, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.on('error', reject);
    c.on('exit', (code, signal) => resolve({ code, signal, out }));
  });
}

/** Child: ingest a file's bytes slowly (so the other child must wait), print the outcome. */
const SLOW_INGEST = `
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
const { openStore } = await import(process.argv[1]);
const [root, file, killAt] = process.argv.slice(2);
const data = readFileSync(file);
const store = await openStore(root);
const w = await store.ingest({ digest: 'sha256:' + createHash('sha256').update(data).digest('hex'), size: data.length });
if (w.committed) { console.log('committed'); process.exit(0); }
for (let i = w.offset; i < data.length; i += 16384) {
  const chunk = data.subarray(i, Math.min(data.length, i + 16384));
  await new Promise((r, j) => w.stream.write(chunk, (e) => (e ? j(e) : r())));
  if (killAt && i + chunk.length >= Number(killAt)) process.kill(process.pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 5));
}
await w.commit();
console.log('wrote');
`;

describe('local store on disk', () => {
  test('is a valid OCI layout with 0644 blobs and 0755 dirs', async () => {
    const root = await tmp();
    const s = await openStore(root);
    assert.deepEqual(JSON.parse(await readFile(join(root, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8'));
    assert.deepEqual(index, { schemaVersion: 2, mediaType: MT.ociIndex, manifests: [] });
    const d = await s.putBlob(Buffer.from('x'));
    assert.equal((await stat(s.blobPath(d))).mode & 0o777, 0o644);
    for (const dir of ['blobs', 'blobs/sha256', 'ingest', 'locks']) assert.equal((await stat(join(root, dir))).mode & 0o777, 0o755, dir);
    await openStore(root); // reopening is fine
  });

  test('index.json rewrites keep entries and fields other tools wrote', async () => {
    const root = await tmp();
    const foreign = {
      schemaVersion: 2,
      mediaType: MT.ociIndex,
      annotations: { 'com.example.top': '1' },
      'x-extra': true,
      manifests: [
        { mediaType: MT.ociManifest, digest: sha256('a'), size: 1, annotations: { 'com.example': 'keep' } },
        { mediaType: MT.ociManifest, digest: sha256('b'), size: 1, annotations: { [REF_NAME_ANNOTATION]: 'v1', 'com.example': 'also' } },
      ],
    };
    await writeFile(join(root, 'index.json'), JSON.stringify(foreign));
    const s = await openStore(root);
    assert.equal((await s.getRef('v1'))?.annotations?.['com.example'], 'also');
    await s.setRef('docker.io/library/busybox:latest', { mediaType: MT.ociManifest, digest: sha256('c'), size: 1 });
    await s.deleteRef('nothing');
    const after = JSON.parse(await readFile(join(root, 'index.json'), 'utf8'));
    assert.deepEqual(after.annotations, foreign.annotations);
    assert.equal(after['x-extra'], true);
    assert.deepEqual(after.manifests.slice(0, 2), foreign.manifests);
    assert.equal(after.manifests[2].annotations[REF_NAME_ANNOTATION], 'docker.io/library/busybox:latest');
  });

  test('two processes ingesting one digest: one writes, the other waits and finds it committed', async () => {
    const root = await tmp();
    await openStore(root);
    const file = join(root, 'payload');
    const data = randomBytes(400_000);
    await writeFile(file, data);
    const [a, b] = await Promise.all([child(SLOW_INGEST, [root, file]), child(SLOW_INGEST, [root, file])]);
    assert.deepEqual([a.code, b.code], [0, 0]);
    assert.deepEqual([a.out.trim(), b.out.trim()].sort(), ['committed', 'wrote']);
    const s = await openStore(root);
    assert.deepEqual(await s.readBlob(sha256(data)), data);
    assert.deepEqual(await readdir(join(root, 'ingest')), []);
  });

  test('a partial left by a killed process is resumed from its size', async () => {
    const root = await tmp();
    await openStore(root);
    const file = join(root, 'payload');
    const data = randomBytes(200_000);
    await writeFile(file, data);
    const killed = await child(SLOW_INGEST, [root, file, '65536']);
    assert.equal(killed.signal, 'SIGKILL');
    const s = await openStore(root);
    const w = await s.ingest({ digest: sha256(data), size: data.length }, { lockTimeoutMs: 3000 });
    assert.equal(w.committed, false);
    assert.equal(w.offset, 65536);
    w.stream.end(data.subarray(w.offset));
    await w.commit();
    assert.deepEqual(await s.readBlob(sha256(data)), data);
  });

  test('a corrupted partial is caught on commit after resume', async () => {
    const root = await tmp();
    const s = await openStore(root);
    const data = randomBytes(10_000);
    const bad = Buffer.from(data.subarray(0, 4000));
    bad[0] = bad[0]! ^ 1;
    await writeFile(join(root, 'ingest', `sha256-${sha256(data).slice(7)}.partial`), bad);
    const w = await s.ingest({ digest: sha256(data), size: data.length });
    assert.equal(w.offset, 4000);
    w.stream.end(data.subarray(4000));
    await assert.rejects(w.commit(), { code: 'DIGEST_MISMATCH' });
    assert.equal(await s.has(sha256(data)), false);
  });
});

/** Stores a one-layer image; returns its manifest descriptor and parts. */
async function putImage(s: Awaited<ReturnType<typeof openStore>>, seed: string) {
  const layer = Buffer.from(`layer-${seed}`);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  const layerD: Descriptor = { mediaType: MT.ociLayer, digest: await s.putBlob(layer), size: layer.length };
  const configD: Descriptor = { mediaType: MT.ociConfig, digest: await s.putBlob(config), size: config.length };
  const manifest: Manifest = { schemaVersion: 2, mediaType: MT.ociManifest, config: configD, layers: [layerD] };
  const mb = Buffer.from(JSON.stringify(manifest));
  const manifestD: Descriptor = { mediaType: MT.ociManifest, digest: await s.putBlob(mb), size: mb.length };
  return { manifestD, configD, layerD };
}

describe('fsck and gc', () => {
  test('fsck reports digest mismatch, missing blob and bad index.json', async () => {
    const root = await tmp();
    const s = await openStore(root);
    const img = await putImage(s, 'a');
    await s.setRef('img:a', img.manifestD);
    assert.deepEqual(await fsckBlobs(s), []);
    await writeFile(s.blobPath(img.configD.digest), 'tampered');
    await s.delete(img.layerD.digest);
    const kinds = (await fsckBlobs(s)).map((f) => `${f.kind}:${f.digest}`).sort();
    assert.deepEqual(kinds, [`digest-mismatch:${img.configD.digest}`, `missing-blob:${img.layerD.digest}`, `size-mismatch:${img.configD.digest}`].sort());
    await writeFile(join(root, 'index.json'), '{not json');
    assert.ok((await fsckBlobs(s, { skipHash: true })).some((f) => f.kind === 'bad-json'));
  });

  test('gc removes unreachable blobs and stale partials, keeps reachable, young and locked ones', async () => {
    const root = await tmp();
    const s = await openStore(root);
    const kept = await putImage(s, 'kept');
    const rootOnly = await putImage(s, 'root-only');
    const dropped = await putImage(s, 'dropped');
    await s.setRef('kept', kept.manifestD);
    const locked = await s.putBlob(Buffer.from('locked'));
    const young = await gcBlobs(s, [rootOnly.manifestD]);
    assert.deepEqual(young.removed, [], 'everything is younger than the default grace');

    const stale = join(root, 'ingest', `sha256-${sha256('stale').slice(7)}.partial`);
    const fresh = join(root, 'ingest', `sha256-${sha256('fresh').slice(7)}.partial`);
    await writeFile(stale, 'st');
    await writeFile(fresh, 'fr');
    const old = new Date(Date.now() - 48 * 3600_000);
    await utimes(stale, old, old);

    const lock = await acquireLock(join(root, 'locks', `ingest-${locked.slice(7)}.lock`));
    const r = await gcBlobs(s, [rootOnly.manifestD], { minAgeMs: 0 });
    await lock.release();
    const expected = [dropped.manifestD, dropped.configD, dropped.layerD].map((d) => d.digest).sort();
    assert.deepEqual([...r.removed].sort(), expected);
    assert.deepEqual(r.skipped, [locked]);
    assert.deepEqual(r.removedFiles, [stale]);
    assert.ok(r.freedBytes > 0);
    for (const d of [kept, rootOnly]) for (const x of Object.values(d)) assert.equal(await s.has(x.digest), true);
    assert.deepEqual(await readdir(join(root, 'ingest')), [fresh.split('/').pop()]);
  });
});
