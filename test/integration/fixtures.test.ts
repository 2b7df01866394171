/**
 * @module test/integration/fixtures.test
 * Self-test of the test fixtures: every image builds and round-trips through a real
 * registry with its digest intact; htpasswd and token auth behave as documented; the
 * fault proxy's rules fire. One registry per auth mode, shared by the tests below.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { extract } from 'tar-stream';
import { MT } from '../../src/oci/media-types.ts';
import { startFaultProxy, type FaultProxy } from '../fixtures/fault-proxy.ts';
import { buildImage, IMAGE_NAMES, SPECIAL, type BuiltImage } from '../fixtures/images.ts';
import { readBlob } from '../fixtures/layout.ts';
import { inspectRaw, pushImage, startRegistry, type Registry } from '../fixtures/registry.ts';
import { makeTarLayer } from '../fixtures/tar-layer.ts';
import { hashFile } from '../fixtures/util.ts';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Member { name: string; type: string; linkname: string | null; mode: number; uid: number; gid: number;
  size: number; mtime: number; pax: Record<string, string>; devmajor: number; devminor: number }

async function listLayer(path: string, gzip: boolean): Promise<Member[]> {
  const out: Member[] = [];
  const ex = extract();
  ex.on('entry', (h, stream, next) => {
    out.push({ name: h.name, type: h.type, linkname: h.linkname ?? null, mode: h.mode, uid: h.uid, gid: h.gid,
      size: h.size, mtime: h.mtime.getTime() / 1000, pax: (h.pax ?? {}) as Record<string, string>,
      devmajor: h.devmajor, devminor: h.devminor });
    stream.on('end', next);
    stream.resume();
  });
  await (gzip ? pipeline(createReadStream(path), createGunzip(), ex) : pipeline(createReadStream(path), ex));
  return out;
}

const images = new Map<string, BuiltImage>();

describe('images', () => {
  test('every image builds, and its blobs hash to their descriptors', async () => {
    for (const name of IMAGE_NAMES) {
      const img = await buildImage(name);
      images.set(name, img);
      const top = await readBlob(img.layoutDir, img.manifestDigest);
      assert.equal(sha(top), img.manifestDigest, name);
      assert.equal(top.length, img.manifestSize, name);
      for (const l of img.layers) assert.equal(sha(await readBlob(img.layoutDir, l.digest)), l.digest, `${name} layer`);
      assert.deepEqual(img.config.rootfs.diff_ids, img.layers.map((l) => l.diffId), name);
      console.log(`# ${name}: built in ${img.buildMs} ms, ${img.layers.length} layer(s)`);
    }
    assert.equal(images.get('zstd')!.layers[1]!.mediaType, MT.ociLayerZstd);
    assert.equal(images.get('uncompressed')!.layers[0]!.mediaType, MT.ociLayer);
    assert.equal(images.get('uncompressed')!.layers[0]!.digest, images.get('uncompressed')!.layers[0]!.diffId);
    assert.equal(images.get('multiarch-docker')!.manifestMediaType, MT.dockerList);
    assert.equal(images.get('busybox')!.config.config?.Cmd?.[0], '/bin/sh');
  });

  test('multiarch carries amd64, arm64/v8 and a buildx attestation entry', async () => {
    const m = images.get('multiarch')!.manifests!;
    assert.deepEqual(m.map((d) => `${d.platform?.os}/${d.platform?.architecture}${d.platform?.variant ? `/${d.platform.variant}` : ''}`),
      ['linux/amd64', 'linux/arm64/v8', 'unknown/unknown']);
    assert.equal(m[2]!.annotations?.['vnd.docker.reference.type'], 'attestation-manifest');
    assert.equal(m[2]!.annotations?.['vnd.docker.reference.digest'], m[0]!.digest);
  });

  test('whiteouts and special layers contain what they promise', async () => {
    const wh = images.get('whiteouts')!;
    const del = await listLayer(`${wh.layoutDir}/blobs/sha256/${wh.layers[2]!.digest.slice(7)}`, true);
    assert.deepEqual(del.map((e) => e.name).filter((n) => n.includes('.wh.')).sort(),
      ['etc/.wh.motd', 'opt/.wh.rm-me', 'opt/a/.wh..wh..opq']);
    const sp = images.get('special')!;
    const entries = await listLayer(`${sp.layoutDir}/blobs/sha256/${sp.layers[1]!.digest.slice(7)}`, true);
    const by = (n: string): Member => entries.find((e) => e.name === `special/${n}` || e.name === n) ?? assert.fail(`no ${n}`);
    assert.equal(by('target').type, 'link');
    assert.equal(by('rel-symlink').linkname, 'target');
    assert.equal(by('abs-symlink').linkname, '/etc/passwd');
    assert.equal(by('setuid').mode & 0o4000, 0o4000);
    assert.equal(by('null-dev').type, 'character-device');
    assert.deepEqual([by('null-dev').devmajor, by('null-dev').devminor], [1, 3]);
    assert.equal(by('fifo').type, 'fifo');
    assert.equal(by('xattrs').pax['SCHILY.xattr.user.test'], 'hello-xattr');
    assert.equal(Buffer.from(by('xattrs').pax['SCHILY.xattr.security.capability'] ?? '', 'latin1').toString('hex'), SPECIAL.capabilityHex);
    assert.equal(by(SPECIAL.longName).size, 16);
    assert.ok(Buffer.byteLength(SPECIAL.longName) > 100);
    assert.ok(entries.some((e) => e.pax['GNU.sparse.realsize'] === String(SPECIAL.sparseSize)), 'sparse file in GNU PAX 1.0 form');
    for (const e of entries) {
      assert.deepEqual([e.uid, e.gid, e.mtime], [SPECIAL.uid, SPECIAL.gid, SPECIAL.mtime], e.name);
    }
  });

  test('makeTarLayer stores hostile names verbatim', async () => {
    const l = await makeTarLayer([
      { path: '../escape', type: 'file', content: 'x' },
      { path: '/abs', type: 'file', content: 'y', mode: 0o4755, uid: 7, gid: 8 },
      { path: 'link', type: 'symlink', linkname: '/etc' },
      { path: 'link/pwned', type: 'file', content: 'z' },
      { path: 'hl', type: 'hardlink', linkname: '../../etc/shadow' },
      { path: `${'d'.repeat(120)}/f`, type: 'file', content: 'long' },
      { path: 'dev/null', type: 'char', devmajor: 1, devminor: 3 },
      { path: 'p', type: 'fifo' },
      { path: 'x', type: 'file', content: 'a', pax: { 'SCHILY.xattr.user.k': 'v' } },
    ], 'gzip');
    assert.equal((await hashFile(l.path)).digest, l.digest);
    const got = await listLayer(l.path, true);
    assert.deepEqual(got.map((e) => e.name), ['../escape', '/abs', 'link', 'link/pwned', 'hl', `${'d'.repeat(120)}/f`, 'dev/null', 'p', 'x']);
    assert.equal(got[2]!.linkname, '/etc');
    assert.equal(got[4]!.linkname, '../../etc/shadow');
    assert.deepEqual([got[1]!.mode, got[1]!.uid, got[1]!.gid], [0o4755, 7, 8]);
    assert.equal(got[8]!.pax['SCHILY.xattr.user.k'], 'v');
    for (const c of ['zstd', 'none'] as const) assert.ok((await makeTarLayer([{ path: 'a', type: 'dir' }], c)).size > 0);
  });
});

describe('registry, no auth', () => {
  let reg: Registry;
  let proxy: FaultProxy;
  before(async () => {
    reg = await startRegistry();
    console.log(`# registry (no auth) up in ${reg.startMs} ms at ${reg.host}`);
    proxy = await startFaultProxy(reg.url);
  });
  after(async () => {
    await proxy?.close();
    await reg?.stop();
  });

  test('every image pushes and reads back with the same digest', async () => {
    for (const name of IMAGE_NAMES) {
      const img = await buildImage(name);
      const pushed = await pushImage(reg, img.layoutDir, img.tag, `fixtures/${name}:latest`);
      assert.equal(pushed, img.manifestDigest);
      assert.equal(sha(await inspectRaw(reg, `fixtures/${name}:latest`)), img.manifestDigest, name);
    }
    const r = await fetch(`${reg.url}/v2/fixtures/multiarch-docker/manifests/latest`, { headers: { accept: MT.dockerList } });
    assert.equal(r.headers.get('content-type'), MT.dockerList);
    assert.equal(r.headers.get('docker-content-digest'), images.get('multiarch-docker')?.manifestDigest ?? (await buildImage('multiarch-docker')).manifestDigest);
  });

  test('fault proxy: 500 and 429 n times, then pass; requests recorded', async () => {
    const r500 = proxy.add({ method: 'GET', path: /^\/v2\/$/, times: 2, action: { type: 'status', status: 500 } });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await fetch(`${proxy.url}/v2/`)).status);
    assert.deepEqual(statuses, [500, 500, 200]);
    assert.deepEqual([r500.seen, r500.applied], [3, 2]);
    proxy.add({ path: /manifests/, nth: 2, action: { type: 'rate-limit' } });
    const m = `${proxy.url}/v2/fixtures/busybox/manifests/latest`;
    const a = await fetch(m, { headers: { accept: MT.ociManifest } });
    const b = await fetch(m, { headers: { accept: MT.ociManifest } });
    assert.deepEqual([a.status, b.status, b.headers.get('retry-after')], [200, 429, '1']);
    assert.equal(proxy.requests.at(-1)?.headers.accept, MT.ociManifest);
    assert.equal(sha(await inspectRaw(proxy, 'fixtures/busybox:latest')), images.get('busybox')!.manifestDigest);
    proxy.reset();
  });

  test('fault proxy: cut, flip, throttle, Range', async () => {
    const bb = images.get('busybox')!;
    const blob = `${proxy.url}/v2/fixtures/busybox/blobs/${bb.layers[0]!.digest}`;
    proxy.add({ path: /\/blobs\//, action: { type: 'cut', afterBytes: 100_000 } });
    await assert.rejects(async () => Buffer.from(await (await fetch(blob)).arrayBuffer()));
    proxy.add({ path: /\/blobs\//, action: { type: 'flip', offset: 12345 } });
    const flipped = Buffer.from(await (await fetch(blob)).arrayBuffer());
    assert.equal(flipped.length, bb.layers[0]!.size);
    assert.notEqual(sha(flipped), bb.layers[0]!.digest);
    assert.equal(sha(Buffer.from(await (await fetch(blob)).arrayBuffer())), bb.layers[0]!.digest, 'rules fire once');
    const cfg = `${proxy.url}/v2/fixtures/busybox/blobs/${bb.configDigest}`;
    proxy.add({ path: /\/blobs\//, action: { type: 'throttle', bytesPerSecond: 2000 } });
    const t0 = performance.now();
    const slow = Buffer.from(await (await fetch(cfg)).arrayBuffer());
    assert.equal(sha(slow), bb.configDigest);
    assert.ok(performance.now() - t0 > (slow.length / 2000) * 1000 * 0.5, 'throttled');
    const ranged = await fetch(blob, { headers: { range: 'bytes=10-19' } });
    assert.equal(ranged.status, 206);
    assert.equal(Buffer.from(await ranged.arrayBuffer()).length, 10);
    assert.equal(proxy.requests.at(-1)?.headers.range, 'bytes=10-19');
    assert.deepEqual(proxy.requests.map((r) => r.action), ['cut', 'flip', 'pass', 'throttle', 'pass']);
  });
});

describe('registry, htpasswd', () => {
  let reg: Registry;
  before(async () => { reg = await startRegistry({ auth: 'htpasswd', users: { alice: 'wonderland' } }); });
  after(async () => { await reg?.stop(); });

  test('rejects anonymous, accepts credentials', async () => {
    const img = await buildImage('busybox');
    await assert.rejects(pushImage(reg, img.layoutDir, img.tag, 'bb:latest'));
    await pushImage(reg, img.layoutDir, img.tag, 'bb:latest', { creds: reg.creds });
    await assert.rejects(inspectRaw(reg, 'bb:latest'));
    await assert.rejects(inspectRaw(reg, 'bb:latest', 'alice:wrong'));
    assert.equal(sha(await inspectRaw(reg, 'bb:latest', 'alice:wonderland')), img.manifestDigest);
    const r = await fetch(`${reg.url}/v2/`);
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Basic realm="berth-test-realm"/);
  });
});

describe('registry, token auth', () => {
  let reg: Registry;
  before(async () => { reg = await startRegistry({ auth: 'token', users: { bob: 'builder' } }); });
  after(async () => { await reg?.stop(); });

  test('anonymous pull of public/, credentials for the rest', async () => {
    const img = await buildImage('busybox');
    await pushImage(reg, img.layoutDir, img.tag, 'public/bb:latest', { creds: 'bob:builder' });
    await pushImage(reg, img.layoutDir, img.tag, 'private/bb:latest', { creds: 'bob:builder' });
    await assert.rejects(pushImage(reg, img.layoutDir, img.tag, 'public/other:latest'));
    assert.equal(sha(await inspectRaw(reg, 'public/bb:latest')), img.manifestDigest);
    await assert.rejects(inspectRaw(reg, 'private/bb:latest'));
    await assert.rejects(inspectRaw(reg, 'private/bb:latest', 'bob:nope'));
    assert.equal(sha(await inspectRaw(reg, 'private/bb:latest', 'bob:builder')), img.manifestDigest);
    const ts = reg.tokenService!;
    const anon = ts.requests.filter((r) => r.user === null && r.scopes.includes('repository:public/bb:pull'));
    assert.ok(anon.length > 0 && anon.every((r) => r.status === 200 && r.service === ts.service));
    assert.ok(ts.requests.some((r) => r.user === null && r.status === 401 && r.scopes.includes('repository:private/bb:pull')));
    assert.ok(ts.requests.some((r) => r.user === 'bob' && r.status === 401));
    const r = await fetch(`${reg.url}/v2/`);
    assert.match(r.headers.get('www-authenticate') ?? '', new RegExp(`^Bearer realm="${ts.realm}",service="${ts.service}"`));
    // The registry really checks the tokens: a right one passes, a wrong issuer does not.
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: ts.issuer, sub: 'x', aud: ts.service, exp: now + 60, nbf: now - 10, iat: now, jti: 'j',
      access: [{ type: 'repository', name: 'private/bb', actions: ['pull'] }] };
    const get = (tok: string) => fetch(`${reg.url}/v2/private/bb/manifests/latest`,
      { method: 'HEAD', headers: { authorization: `Bearer ${tok}`, accept: MT.ociManifest } });
    assert.equal((await get(ts.signJwt(claims))).status, 200);
    assert.equal((await get(ts.signJwt({ ...claims, iss: 'someone-else' }))).status, 401);
    assert.equal((await get(ts.signJwt({ ...claims, access: [] }))).status, 401);
  });

  test('the registry accepts tokens identified by x5c alone and by kid alone', async () => {
    const img = await buildImage('busybox');
    for (const keyHint of ['x5c', 'kid'] as const) {
      const r = await startRegistry({ auth: 'token', token: { keyHint } });
      try {
        await pushImage(r, img.layoutDir, img.tag, 'public/bb:latest', { creds: r.creds });
        assert.equal(sha(await inspectRaw(r, 'public/bb:latest')), img.manifestDigest, keyHint);
      } finally {
        await r.stop();
      }
    }
  });
});
