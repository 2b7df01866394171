/**
 * Pulls every kind of test image from a real docker-registry with the real CLI, then checks
 * the store with independent tools (skopeo, umoci) and berth's own image commands.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startRegistry, pushImage, type Registry } from '../fixtures/registry.ts';
import { buildImage, type BuiltImage, type ImageName } from '../fixtures/images.ts';
import { berthEnv, type BerthEnv } from '../fixtures/berth.ts';
import { run, tempDir } from '../fixtures/util.ts';

let reg: Registry;
let b: BerthEnv;
const images = new Map<string, BuiltImage>();
const PUSHED: ImageName[] = ['busybox', 'whiteouts', 'zstd', 'uncompressed', 'many-files', 'special', 'multiarch', 'multiarch-docker'];

before(async () => {
  reg = await startRegistry();
  b = await berthEnv('berth-pull');
  for (const n of PUSHED) {
    const img = await buildImage(n);
    images.set(n, img);
    await pushImage(reg, img.layoutDir, img.tag, `test/${n}:latest`);
  }
});
after(async () => {
  await reg?.stop();
});

describe('berth pull from a real registry', () => {
  for (const n of ['busybox', 'whiteouts', 'zstd', 'uncompressed', 'many-files', 'special'] as const) {
    test(`${n}: pulls, verifies and names the image`, async () => {
      const r = await b.run(['pull', '-q', `${reg.host}/test/${n}:latest`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), images.get(n)!.manifestDigest);
    });
  }

  test('skopeo and umoci read what berth wrote', async () => {
    const name = `${reg.host}/test/zstd:latest`;
    const out = await tempDir('berth-skopeo-out');
    await run(['skopeo', 'copy', '-q', `oci:${b.root}:${name}`, `oci:${out}:copy`]);
    const idx = JSON.parse(await readFile(join(out, 'index.json'), 'utf8'));
    assert.equal(idx.manifests[0].digest, images.get('zstd')!.manifestDigest);
    const insp = await run(['skopeo', 'inspect', `oci:${b.root}:${reg.host}/test/busybox:latest`]);
    assert.equal(JSON.parse(insp.stdout).Digest, images.get('busybox')!.manifestDigest);
    const un = await tempDir('berth-umoci');
    await run(['umoci', 'raw', 'unpack', '--image', `${b.root}:${reg.host}/test/whiteouts:latest`, join(un, 'rootfs')]);
    await assert.rejects(stat(join(un, 'rootfs', 'opt', 'rm-me')));
  });

  test('multi-platform index: host platform by default, --platform chooses, attestations skipped', async () => {
    const r = await b.run(['pull', '-q', `${reg.host}/test/multiarch:latest`]);
    assert.equal(r.code, 0, r.stderr);
    const m = images.get('multiarch')!;
    const amd = m.manifests!.find((x) => x.platform?.architecture === 'amd64')!;
    assert.equal(r.stdout.trim(), amd.digest);
    const b2 = await berthEnv('berth-pull-arm');
    const r2 = await b2.run(['pull', '-q', '--platform', 'linux/arm64', `${reg.host}/test/multiarch:latest`]);
    assert.equal(r2.code, 0, r2.stderr);
    const arm = m.manifests!.find((x) => x.platform?.architecture === 'arm64')!;
    assert.equal(r2.stdout.trim(), arm.digest);
    const inspect = JSON.parse((await b2.run(['image', 'inspect', `${reg.host}/test/multiarch`])).stdout);
    assert.equal(inspect[0].Platform, 'linux/arm64/v8');
    assert.equal(inspect[0].IndexDigest, m.manifestDigest);
    const r3 = await b2.run(['pull', '--platform', 'linux/s390x', `${reg.host}/test/multiarch:latest`]);
    assert.equal(r3.code, 11);
    assert.match(r3.stderr, /no image for platform linux\/s390x \(available: linux\/amd64, linux\/arm64/);
  });

  test('Docker manifest list and schema-2 manifests', async () => {
    const r = await b.run(['pull', '-q', `${reg.host}/test/multiarch-docker:latest`]);
    assert.equal(r.code, 0, r.stderr);
  });

  test('pull by digest and by tag+digest', async () => {
    const d = images.get('busybox')!.manifestDigest;
    const b2 = await berthEnv('berth-pull-digest');
    const r = await b2.run(['pull', '-q', `${reg.host}/test/busybox@${d}`]);
    assert.equal(r.code, 0, r.stderr);
    const r2 = await b2.run(['pull', '-q', `${reg.host}/test/busybox:latest@${d}`]);
    assert.equal(r2.code, 0, r2.stderr);
    const ls = JSON.parse((await b2.run(['images', '--json'])).stdout) as Array<{ Name: string }>;
    assert.deepEqual(ls.map((i) => i.Name).sort(), [`${reg.host}/test/busybox:latest`, `${reg.host}/test/busybox@${d}`].sort());
  });

  test('images, inspect, rmi, prune and fsck', async () => {
    const ls = await b.run(['images']);
    assert.equal(ls.code, 0);
    assert.match(ls.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE/);
    assert.match(ls.stdout, new RegExp(`${reg.host}/test/busybox\\s+latest`));
    const insp = JSON.parse((await b.run(['image', 'inspect', `${reg.host}/test/special`])).stdout)[0];
    assert.equal(insp.Digest, images.get('special')!.manifestDigest);
    assert.equal(insp.Layers.length, images.get('special')!.layers.length);
    assert.equal(typeof insp.Created, 'string');
    assert.equal((await b.run(['image', 'fsck'])).code, 0);
    const blobsBefore = (await readdir(join(b.root, 'blobs', 'sha256'))).length;
    const rm = await b.run(['rmi', `${reg.host}/test/special`]);
    assert.equal(rm.code, 0, rm.stderr);
    const missing = await b.run(['rmi', `${reg.host}/test/special`]);
    assert.equal(missing.code, 4);
    assert.match(missing.stderr, /image not known/);
    const pr = await b.run(['image', 'prune']);
    assert.equal(pr.code, 0, pr.stderr);
    assert.ok((await readdir(join(b.root, 'blobs', 'sha256'))).length < blobsBefore);
    const f = await b.run(['image', 'fsck']);
    assert.equal(f.code, 0, f.stdout + f.stderr);
  });

  test('export to docker-archive and OCI layout, import back', async () => {
    const dir = await tempDir('berth-export');
    const name = `${reg.host}/test/busybox:latest`;
    assert.equal((await b.run(['image', 'export', name, '-o', join(dir, 'oci')])).code, 0);
    assert.equal((await b.run(['image', 'export', '--format', 'docker-archive', name, '-o', join(dir, 'img.tar')])).code, 0);
    const b2 = await berthEnv('berth-import');
    const i1 = await b2.run(['image', 'import', join(dir, 'img.tar')]);
    assert.equal(i1.code, 0, i1.stderr);
    const i2 = await b2.run(['image', 'import', join(dir, 'oci')]);
    assert.equal(i2.code, 0, i2.stderr);
    const f = await b2.run(['image', 'fsck']);
    assert.equal(f.code, 0, f.stdout + f.stderr);
  });

  // The bundle runs as a vm.Script (bin/launch.cjs), where Node 20 has no loader for a
  // dynamic import(): every lazily loaded module must come through require. Both the worker
  // thread and zstd-napi are loaded that way only on these paths.
  test('the built CLI: unpack worker, zstd-napi and a zstd docker-archive export all load', async () => {
    const w = await berthEnv('berth-pull-worker');
    for (const n of ['busybox', 'zstd'] as const) {
      const r = await w.run(['pull', '-q', `${reg.host}/test/${n}:latest`], { env: { BERTH_UNPACK_WORKER: '1', BERTH_ZSTD: 'napi' } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), images.get(n)!.manifestDigest);
    }
    const f = await w.run(['image', 'fsck']);
    assert.equal(f.code, 0, f.stdout + f.stderr);
    const dir = await tempDir('berth-export-zstd');
    const e = await w.run(['image', 'export', '--format', 'docker-archive', `${reg.host}/test/zstd:latest`, '-o', join(dir, 'img.tar')]);
    assert.equal(e.code, 0, e.stderr);
  });

  test('blob files are read-only content, nothing left in ingest', async () => {
    const ingest = await readdir(join(b.root, 'ingest')).catch(() => []);
    assert.deepEqual(ingest.filter((f) => f.endsWith('.partial')), []);
    const layout = JSON.parse(await readFile(join(b.root, 'oci-layout'), 'utf8'));
    assert.equal(layout.imageLayoutVersion, '1.0.0');
  });
});
