/**
 * Faults between berth and a real registry (a proxy that cuts, corrupts, throttles and
 * answers 500/429), bad input, concurrent pulls, an interrupted pull and a full disk. Each
 * case ends in a successful retry or the documented exit code, and `berth image fsck` is
 * clean afterwards (nothing unverified or half-written is left in the store).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushImage, type Registry } from '../fixtures/registry.ts';
import { buildImage, type BuiltImage } from '../fixtures/images.ts';
import { startFaultProxy, type FaultProxy } from '../fixtures/fault-proxy.ts';
import { berthEnv, type BerthEnv } from '../fixtures/berth.ts';
import { run, sleep, tempDir } from '../fixtures/util.ts';

let reg: Registry;
let proxy: FaultProxy;
let busybox: BuiltImage;
let many: BuiltImage;
const LAYER = /\/blobs\/sha256:/;

before(async () => {
  reg = await startRegistry();
  busybox = await buildImage('busybox');
  many = await buildImage('many-files');
  await pushImage(reg, busybox.layoutDir, busybox.tag, 'f/busybox:latest');
  await pushImage(reg, many.layoutDir, many.tag, 'f/many:latest');
  proxy = await startFaultProxy(reg.url);
});
after(async () => {
  await proxy?.close();
  await reg?.stop();
});

async function pullThroughProxy(setup: (p: FaultProxy) => void, image = 'f/busybox:latest'): Promise<{ b: BerthEnv; code: number | null; stderr: string; stdout: string }> {
  proxy.reset();
  setup(proxy);
  const b = await berthEnv('berth-fault');
  const r = await b.run(['pull', `${proxy.host}/${image}`]);
  return { b, ...r };
}

async function assertClean(b: BerthEnv): Promise<void> {
  const f = await b.run(['image', 'fsck']);
  assert.equal(f.code, 0, `fsck: ${f.stdout}${f.stderr}`);
  const partials = (await readdir(join(b.root, 'ingest')).catch(() => [] as string[])).filter((n) => n.endsWith('.partial'));
  assert.deepEqual(partials, []);
}

const layerDigest = () => busybox.layers[0]!.digest;
const layerPath = () => new RegExp(`/blobs/${layerDigest()}`);

describe('faults on the wire', () => {
  test('a blob cut in the middle resumes with a Range request', async () => {
    const { b, code, stderr } = await pullThroughProxy((p) => p.add({ path: layerPath(), action: { type: 'cut', afterBytes: 300_000 } }));
    assert.equal(code, 0, stderr);
    const gets = proxy.requests.filter((r) => layerPath().test(r.path));
    assert.equal(gets.length, 2);
    // resumes from what reached the disk: after the start, at most where the cut was
    const from = Number(/^bytes=(\d+)-$/.exec(String(gets[1]!.headers.range))?.[1]);
    assert.ok(from > 0 && from <= 300_000, `range ${gets[1]!.headers.range}`);
    await assertClean(b);
  });

  test('a partial that is already whole (killed before its commit) is committed without a request; a whole one with wrong bytes is fetched again', async () => {
    // The partial a pull leaves when it is killed between the blob's last byte and the
    // commit: resuming it with `Range: bytes=SIZE-` is unsatisfiable (docker-registry's
    // answer dropped the connection on every retry, so such a store never pulled again).
    const hex = layerDigest().slice('sha256:'.length);
    const bytes = await readFile(join(busybox.layoutDir, 'blobs', 'sha256', hex));
    for (const [what, content, requests] of [['whole and right', bytes, 0], ['whole and wrong', Buffer.from(bytes).fill(0x5a, 1000, 2000), 1]] as const) {
      proxy.reset();
      const b = await berthEnv('berth-whole');
      await mkdir(join(b.root, 'ingest'), { recursive: true });
      await writeFile(join(b.root, 'ingest', `sha256-${hex}.partial`), content);
      const r = await b.run(['pull', `${proxy.host}/f/busybox:latest`]);
      assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      const gets = proxy.requests.filter((q) => layerPath().test(q.path));
      assert.equal(gets.length, requests, `${what}: ${gets.map((g) => g.headers.range ?? 'no range').join(', ')}`);
      if (requests) assert.equal(gets[0]!.headers.range, undefined, `${what}: fetched from byte 0`);
      await assertClean(b);
    }
  });

  test('500 then success', async () => {
    const { b, code, stderr } = await pullThroughProxy((p) => p.add({ path: /\/manifests\//, times: 2, action: { type: 'status', status: 500 } }));
    assert.equal(code, 0, stderr);
    await assertClean(b);
  });

  test('a blob answered 500 twice: the unpacker waiting for it is cancelled, the retry pulls', async () => {
    // The layer's unpacker starts while its blob request is under way (pull.ts): a request
    // that fails must cancel it, leaving no work dir, helper or lock behind.
    const { b, code, stderr } = await pullThroughProxy((p) => p.add({ path: layerPath(), times: 2, action: { type: 'status', status: 500 } }));
    assert.equal(code, 0, stderr);
    assert.equal(proxy.requests.filter((r) => layerPath().test(r.path)).length, 3);
    assert.deepEqual(await readdir(join(b.root, 'snapshots', 'work')).catch(() => [] as string[]), []);
    await assertClean(b);
  });

  test('429 with Retry-After is honoured', async () => {
    const t0 = Date.now();
    const { b, code, stderr } = await pullThroughProxy((p) => p.add({ path: layerPath(), action: { type: 'rate-limit', retryAfter: 1 } }));
    assert.equal(code, 0, stderr);
    assert.ok(Date.now() - t0 >= 1000, 'waited for Retry-After');
    await assertClean(b);
  });

  test('one corrupted byte: discarded and fetched again', async () => {
    const { b, code, stderr } = await pullThroughProxy((p) => p.add({ path: layerPath(), action: { type: 'flip', offset: 1234 } }));
    assert.equal(code, 0, stderr);
    assert.equal(proxy.requests.filter((r) => layerPath().test(r.path)).length, 2);
    await assertClean(b);
  });

  test('a blob corrupted every time: digest mismatch, exit 10, nothing stored', async () => {
    const { b, code, stderr } = await pullThroughProxy((p) => p.add({ path: layerPath(), times: Infinity, action: { type: 'flip', offset: 10 } }));
    assert.equal(code, 10, stderr);
    assert.match(stderr, /^berth: .*sha256:/m);
    assert.equal(stderr.trim().split('\n').length, 1, 'one line on stderr');
    const ls = JSON.parse((await b.run(['images', '--json'])).stdout);
    assert.deepEqual(ls, []);
    const blobs = await readdir(join(b.root, 'blobs', 'sha256'));
    assert.ok(!blobs.includes(layerDigest().slice(7)));
    await assertClean(b);
  });

  test('persistent 500: registry error, exit 13', async () => {
    const { code, stderr } = await pullThroughProxy((p) => p.add({ path: /\/manifests\//, times: Infinity, action: { type: 'status', status: 500 } }));
    assert.equal(code, 13, stderr);
  });

  test('a very slow blob still completes', async () => {
    const { b, code, stderr } = await pullThroughProxy((p) => p.add({ path: layerPath(), action: { type: 'throttle', bytesPerSecond: 1_000_000 } }));
    assert.equal(code, 0, stderr);
    await assertClean(b);
  });

  test('an interrupted pull (SIGKILL) restarts cleanly', async () => {
    proxy.reset();
    proxy.add({ path: LAYER, times: Infinity, action: { type: 'throttle', bytesPerSecond: 400_000 } });
    const b = await berthEnv('berth-kill');
    const child = b.spawn(['pull', `${proxy.host}/f/many:latest`]);
    await sleep(1500);
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    proxy.reset();
    const r = await b.run(['pull', `${proxy.host}/f/many:latest`]);
    assert.equal(r.code, 0, r.stderr);
    await assertClean(b);
  });
});

describe('concurrency', () => {
  test('two pulls of the same image at once share the work and both succeed', async () => {
    proxy.reset();
    proxy.add({ path: LAYER, times: Infinity, action: { type: 'throttle', bytesPerSecond: 2_000_000 } });
    const b = await berthEnv('berth-conc');
    const [r1, r2] = await Promise.all([b.run(['pull', `${proxy.host}/f/many:latest`]), b.run(['pull', `${proxy.host}/f/many:latest`])]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(r2.code, 0, r2.stderr);
    await assertClean(b);
  });
});

describe('bad input gets one line and a distinct exit code', () => {
  const cases: Array<[string, string[], number, RegExp]> = [
    ['malformed reference', ['pull', 'UPPER/Case::x'], 3, /invalid reference/],
    ['unknown host', ['pull', 'no-such-host.invalid/x/y:1'], 6, /no-such-host\.invalid/],
    ['connection refused', ['pull', '127.0.0.1:1/x/y:1'], 7, /127\.0\.0\.1:1/],
    ['bad platform', ['pull', '--platform', 'linux', 'busybox'], 2, /invalid platform/],
  ];
  for (const [what, args, code, msg] of cases) {
    test(what, async () => {
      const b = await berthEnv('berth-bad');
      const r = await b.run(args);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, msg);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    });
  }

  test('unknown repository and unknown tag', async () => {
    const b = await berthEnv('berth-bad');
    const r = await b.run(['pull', `${reg.host}/no/such:latest`]);
    assert.equal(r.code, 8, r.stderr);
    const r2 = await b.run(['pull', `${reg.host}/f/busybox:nope`]);
    assert.equal(r2.code, 8, r2.stderr);
    assert.match(r2.stderr, /nope/);
  });

  test('disk full: exit 12 and nothing half-written', async () => {
    const dir = await tempDir('berth-full');
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    await run(['mount', '-t', 'tmpfs', '-o', 'size=1500k', 'berth-full', mnt]);
    try {
      const b = await berthEnv('berth-full');
      const r = await b.run(['--root', join(mnt, 'root'), 'pull', `${reg.host}/f/many:latest`]);
      assert.equal(r.code, 12, r.stderr);
      assert.match(r.stderr, /no space left/);
      const refs = await b.run(['--root', join(mnt, 'root'), 'images', '--json']);
      assert.deepEqual(JSON.parse(refs.stdout), []);
      const partials = (await readdir(join(mnt, 'root', 'ingest')).catch(() => [] as string[])).filter((n) => n.endsWith('.partial'));
      assert.deepEqual(partials, []);
    } finally {
      await run(['umount', '-l', mnt], { reject: false });
    }
  });
});
