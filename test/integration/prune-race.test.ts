/**
 * Integration: `berth image prune` running while a pull is in flight (issue 7, "Concurrency
 * that loses data"). The pull's second layer is slowed by the fault proxy; a real prune
 * runs while it downloads. Without leases, prune deleted the first layer's committed blob
 * and snapshot (unreferenced until the pull names the image) and a layer the pull had found
 * "already exists"; the image was then named with missing content. Both snapshot formats;
 * after every case the pull succeeds, `berth image fsck` is clean and no lease is left.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat, writeFile, mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { startRegistry, pushImage, type Registry } from '../fixtures/registry.ts';
import { randomBytes } from 'node:crypto';
import { writeImageLayout, type BuiltImage } from '../fixtures/layout.ts';
import { makeTarLayer } from '../fixtures/tar-layer.ts';
import { startFaultProxy, type FaultProxy } from '../fixtures/fault-proxy.ts';
import { berthEnv, type BerthEnv } from '../fixtures/berth.ts';
import { tempDir, waitUntil } from '../fixtures/util.ts';

let reg: Registry;
let proxy: FaultProxy;
let busybox: BuiltImage;
let many: BuiltImage;

before(async () => {
  reg = await startRegistry();
  // Layers of their own (not busybox's): containers of other test runs on this host use
  // busybox's layers, and prune rightly keeps what a container uses.
  const tag = `${process.pid}-${Date.now()}`;
  const base = await makeTarLayer([{ path: 'etc/', type: 'dir' }, { path: `etc/race-${tag}`, type: 'file', content: tag }]);
  const big = await makeTarLayer([{ path: 'data/', type: 'dir' }, { path: 'data/random', type: 'file', content: randomBytes(900_000) }]);
  const dir = await tempDir('berth-race-img');
  busybox = await writeImageLayout(join(dir, 'base'), 'latest', { layers: [base] });
  many = await writeImageLayout(join(dir, 'big'), 'latest', { layers: [base, big] });
  await pushImage(reg, busybox.layoutDir, busybox.tag, 'race/busybox:latest');
  await pushImage(reg, many.layoutDir, many.tag, 'race/many:latest');
  proxy = await startFaultProxy(reg.url);
});
after(async () => {
  await proxy?.close();
  await reg?.stop();
});

let pullRunning = false;
const exists = (p: string) => stat(p).then(() => true, () => false);

async function assertClean(b: BerthEnv): Promise<void> {
  const f = await b.run(['image', 'fsck']);
  assert.equal(f.code, 0, `fsck: ${f.stdout}${f.stderr}`);
  assert.deepEqual(await readdir(join(b.root, 'leases')).catch(() => []), [], 'no lease left behind');
}

/** Starts a pull of race/many whose big layer takes ~5 s; resolves once that layer is downloading. */
async function slowPull(b: BerthEnv, format: string): Promise<{ done: Promise<{ code: number | null; stderr: string }> }> {
  proxy.reset();
  const slow = many.layers[1]!;
  proxy.add({ path: new RegExp(`/blobs/${slow.digest}`), times: Infinity, action: { type: 'throttle', bytesPerSecond: Math.max(20_000, Math.ceil(slow.size / 5)) } });
  const child = b.spawn(['--snapshot-format', format, 'pull', `${proxy.host}/race/many:latest`]);
  const err: Buffer[] = [];
  child.stderr!.on('data', (d: Buffer) => err.push(d));
  child.stdout!.resume();
  pullRunning = true;
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('close', (code) => {
    pullRunning = false;
    resolve({ code, stderr: Buffer.concat(err).toString() });
  }));
  // the proxy records a request when it is done; the partial file shows it is under way
  const partial = join(b.root, 'ingest', `sha256-${slow.digest.slice(7)}.partial`);
  const started = await waitUntil(async () => ((await stat(partial).catch(() => undefined))?.size ?? 0) > 0, 30_000);
  assert.ok(started, 'the slow layer started downloading');
  return { done }; // not `return done`: an async function would wait for it
}

const blobFile = (b: BerthEnv, d: string) => join(b.root, 'blobs', 'sha256', d.slice(7));

for (const format of ['erofs', 'dir']) {
  test(`${format}: prune during a pull keeps the layers it already committed`, async () => {
    const b = await berthEnv('berth-race');
    const { done: pull } = await slowPull(b, format);
    const base = busybox.layers[0]!.digest;
    assert.ok(await waitUntil(() => exists(blobFile(b, base)), 30_000), 'first layer committed');
    const p = await b.run(['image', 'prune']);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(pullRunning, true, 'the prune ran while the pull was still running');
    assert.ok(await exists(blobFile(b, base)), 'prune kept the in-flight pull\'s blob');
    const r = await pull;
    assert.equal(r.code, 0, r.stderr);
    await assertClean(b);
    const run = await b.run(['image', 'inspect', 'race/many:latest'.replace(/^/, `${proxy.host}/`)]);
    assert.equal(run.code, 0, run.stderr);
  });

  test(`${format}: prune during a pull keeps a layer the pull found "already exists"`, async () => {
    const b = await berthEnv('berth-race');
    const first = await b.run(['--snapshot-format', format, 'pull', `${reg.host}/race/busybox:latest`]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal((await b.run(['rmi', `${reg.host}/race/busybox:latest`])).code, 0);
    // the busybox layer is now unreferenced: exactly what the next pull reuses
    const { done: pull } = await slowPull(b, format);
    const p = await b.run(['image', 'prune']);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(pullRunning, true, 'the prune ran while the pull was still running');
    assert.ok(await exists(blobFile(b, busybox.layers[0]!.digest)), 'reused layer kept');
    const r = await pull;
    assert.equal(r.code, 0, r.stderr);
    await assertClean(b);
    // and once nothing holds it any more, prune does free it
    assert.equal((await b.run(['rmi', `${proxy.host}/race/many:latest`])).code, 0);
    const p2 = await b.run(['image', 'prune']);
    assert.equal(p2.code, 0, p2.stderr);
    assert.equal(await exists(blobFile(b, busybox.layers[0]!.digest)), false, 'freed after the pull');
    assert.match(p2.stdout, /Removed [1-9]\d* blobs and [1-9]\d* snapshots/);
  });
}

test('a lease left by a pull that died does not keep anything', async () => {
  const b = await berthEnv('berth-race');
  const r = await b.run(['pull', `${reg.host}/race/busybox:latest`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await b.run(['rmi', `${reg.host}/race/busybox:latest`])).code, 0);
  await mkdir(join(b.root, 'leases'), { recursive: true });
  await writeFile(join(b.root, 'leases', '99999999-crashed.json'), JSON.stringify({
    pid: 99_999_999, start: '1', host: hostname(), label: 'pull (crashed)', digests: [busybox.layers[0]!.digest], chainIds: [busybox.layers[0]!.diffId],
  }));
  const p = await b.run(['image', 'prune']);
  assert.equal(p.code, 0, p.stderr);
  assert.equal(await exists(blobFile(b, busybox.layers[0]!.digest)), false);
  await assertClean(b);
});
