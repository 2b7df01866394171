/**
 * @module image/archive/archive.test
 * Round trips through OCI layouts and docker-archives, checked with independent readers
 * (skopeo 1.9, umoci) so our output is not only readable by ourselves.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tar from 'tar-stream';
import { sha256, type Digest } from '../../base/digest.ts';
import { isBerthError } from '../../base/errors.ts';
import { run } from '../../base/exec.ts';
import { openStore, type LocalStore } from '../../content/local-store.ts';
import { fsckBlobs } from '../../content/fsck.ts';
import { MT } from '../../oci/media-types.ts';
import type { Descriptor, Manifest } from '../../oci/types.ts';
import { exportDockerArchive, exportOCILayout, importDockerArchive, importOCILayout } from './index.ts';

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'berth-archive-'));
}

/** A tar layer holding the given files, built with tar-stream. */
async function makeLayer(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, body] of Object.entries(files)) pack.entry({ name, mode: 0o644, mtime: new Date(0) }, body);
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const c of pack) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

interface TinyImage {
  manifestD: Descriptor;
  configDigest: Digest;
  diffIds: Digest[];
}

/** Two layers: one gzip (as pulled from a registry), one uncompressed. */
async function putTinyImage(store: LocalStore, name: string): Promise<TinyImage> {
  const l1 = await makeLayer({ 'hello.txt': 'hello\n', 'etc/os-release': 'ID=tiny\n' });
  const l2 = await makeLayer({ 'bye.txt': 'bye\n' });
  const l1gz = gzipSync(l1);
  const diffIds = [sha256(l1), sha256(l2)];
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', created: '2024-01-01T00:00:00Z',
    config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
  }));
  const layers: Descriptor[] = [
    { mediaType: MT.ociLayerGzip, digest: await store.putBlob(l1gz), size: l1gz.length },
    { mediaType: MT.ociLayer, digest: await store.putBlob(l2), size: l2.length },
  ];
  const configDigest = await store.putBlob(config);
  const manifest: Manifest = { schemaVersion: 2, mediaType: MT.ociManifest, config: { mediaType: MT.ociConfig, digest: configDigest, size: config.length }, layers };
  const mb = Buffer.from(JSON.stringify(manifest));
  const manifestD: Descriptor = { mediaType: MT.ociManifest, digest: await store.putBlob(mb), size: mb.length };
  await store.setRef(name, manifestD);
  return { manifestD, configDigest, diffIds };
}

const NAME = 'docker.io/library/tiny:1.0';

describe('image archives', () => {
  let store: LocalStore;
  let img: TinyImage;
  before(async () => {
    store = await openStore(await tmp());
    img = await putTinyImage(store, NAME);
  });

  test('the store itself is an OCI layout skopeo reads', async () => {
    const inspect = JSON.parse((await run(['skopeo', 'inspect', `oci:${store.root}:${NAME}`])).stdout) as { Digest: string };
    assert.equal(inspect.Digest, img.manifestD.digest);
  });

  test('exportOCILayout → skopeo and umoci read it → importOCILayout restores it', async () => {
    const dir = join(await tmp(), 'layout');
    await exportOCILayout(store, ['tiny:1.0'], dir);
    const inspect = JSON.parse((await run(['skopeo', 'inspect', `oci:${dir}:${NAME}`])).stdout) as { Digest: string; Layers: string[] };
    assert.equal(inspect.Digest, img.manifestD.digest);
    assert.equal(inspect.Layers.length, 2);
    const umoci = await run(['umoci', 'ls', '--layout', dir]);
    assert.match(umoci.stdout, /docker\.io\/library\/tiny:1\.0/);
    // hardlinked, not copied
    assert.equal((await stat(join(dir, 'blobs/sha256', img.configDigest.slice(7)))).ino, (await stat(store.blobPath(img.configDigest))).ino);

    const other = await openStore(await tmp());
    const res = await importOCILayout(other, dir);
    assert.deepEqual(res.map((r) => r.name), [NAME]);
    assert.equal((await other.getRef(NAME))?.digest, img.manifestD.digest);
    assert.deepEqual(await fsckBlobs(other), []);
  });

  test('exportOCILayout with bare tags; importOCILayout needs a repository for them', async () => {
    const dir = join(await tmp(), 'layout');
    await exportOCILayout(store, [NAME], dir, { refName: 'tag', copy: true });
    await run(['skopeo', 'inspect', `oci:${dir}:1.0`]);
    const other = await openStore(await tmp());
    await assert.rejects(importOCILayout(other, dir), (e) => isBerthError(e, 'INVALID_ARGUMENT'));
    const res = await importOCILayout(other, dir, { name: 'example.com/team/tiny' });
    assert.deepEqual(res.map((r) => r.name), ['example.com/team/tiny:1.0']);
  });

  test('importOCILayout reads a layout written by skopeo', async () => {
    const src = join(await tmp(), 'src');
    await exportOCILayout(store, [NAME], src);
    const dir = join(await tmp(), 'skopeo-layout');
    await run(['skopeo', 'copy', '-q', `oci:${src}:${NAME}`, `oci:${dir}:latest`]);
    const other = await openStore(await tmp());
    const res = await importOCILayout(other, dir, { name: 'busybox' });
    assert.deepEqual(res.map((r) => r.name), ['docker.io/library/busybox:latest']);
    assert.deepEqual(await fsckBlobs(other), []);
  });

  test('exportDockerArchive → skopeo reads it → importDockerArchive restores config and diff_ids', async () => {
    const file = join(await tmp(), 'tiny.tar');
    await exportDockerArchive(store, [NAME], file);
    const list = (await run(['tar', '-tf', file])).stdout.split('\n').filter(Boolean).sort();
    assert.ok(list.includes('manifest.json') && list.includes('repositories'));
    const manifest = JSON.parse((await run(['tar', '-xOf', file, 'manifest.json'])).stdout);
    assert.deepEqual(manifest[0].RepoTags, ['tiny:1.0']);
    assert.deepEqual(manifest[0].Layers, img.diffIds.map((d) => `${d.slice(7)}/layer.tar`));

    const ociDir = join(await tmp(), 'from-archive');
    await run(['skopeo', 'copy', '-q', `docker-archive:${file}`, `oci:${ociDir}:x`]);
    const inspect = JSON.parse((await run(['skopeo', 'inspect', '--config', `oci:${ociDir}:x`])).stdout) as { rootfs: { diff_ids: string[] } };
    assert.deepEqual(inspect.rootfs.diff_ids, img.diffIds);

    const other = await openStore(await tmp());
    const res = await importDockerArchive(other, file);
    assert.deepEqual(res.map((r) => r.name), [NAME]);
    const m = await other.readJSON<Manifest>((await other.getRef(NAME))!.digest);
    assert.equal(m.config.digest, img.configDigest);
    assert.deepEqual(m.layers.map((l) => [l.mediaType, l.digest]), img.diffIds.map((d) => [MT.ociLayer, d]));
    assert.deepEqual(await fsckBlobs(other), []);
  });

  test('importDockerArchive reads an archive written by skopeo', async () => {
    const src = join(await tmp(), 'src');
    await exportOCILayout(store, [NAME], src);
    const file = join(await tmp(), 'skopeo.tar');
    await run(['skopeo', 'copy', '-q', `oci:${src}:${NAME}`, `docker-archive:${file}:quay.io/someone/tiny:2`]);
    const other = await openStore(await tmp());
    const res = await importDockerArchive(other, file);
    assert.deepEqual(res.map((r) => r.name), ['quay.io/someone/tiny:2']);
    const m = await other.readJSON<Manifest>(res[0]!.descriptor.digest);
    assert.deepEqual(m.layers.map((l) => l.digest), img.diffIds);
    assert.equal(m.config.digest, img.configDigest);
  });

  test('importDockerArchive rejects a layer that does not match its diff_id', async () => {
    const file = join(await tmp(), 'tiny.tar');
    await exportDockerArchive(store, [NAME], file);
    const work = await tmp();
    await run(['tar', '-xf', file, '-C', work]);
    const layerPath = join(work, `${img.diffIds[1]!.slice(7)}/layer.tar`);
    const raw = await readFile(layerPath);
    raw[raw.length - 2000] = 0x41; // inside the tar, same size
    const { writeFile } = await import('node:fs/promises');
    await writeFile(layerPath, raw);
    const bad = join(work, 'bad.tar');
    await run(['tar', '-cf', bad, '-C', work, 'manifest.json', `${img.configDigest.slice(7)}.json`, ...img.diffIds.map((d) => `${d.slice(7)}/layer.tar`)]);
    const other = await openStore(await tmp());
    await assert.rejects(importDockerArchive(other, bad), (e) => isBerthError(e, 'DIGEST_MISMATCH'));
    assert.equal(await other.getRef(NAME), undefined);
  });

  test('importDockerArchive resolves layers docker wrote as symlinks (legacy layout)', async () => {
    const layer = await makeLayer({ 'a.txt': 'a\n' });
    const diff = sha256(layer);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diff, diff] } }));
    const pack = tar.pack();
    pack.entry({ name: 'aaa/layer.tar', size: layer.length }, layer);
    pack.entry({ name: 'bbb/layer.tar', type: 'symlink', linkname: '../aaa/layer.tar' });
    pack.entry({ name: `${sha256(config).slice(7)}.json` }, config);
    pack.entry({ name: 'manifest.json' }, JSON.stringify([{ Config: `${sha256(config).slice(7)}.json`, RepoTags: ['dup:1'], Layers: ['aaa/layer.tar', 'bbb/layer.tar'] }]));
    pack.finalize();
    const parts: Buffer[] = [];
    for await (const c of pack) parts.push(c as Buffer);
    const file = join(await tmp(), 'dup.tar');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(file, Buffer.concat(parts));
    const other = await openStore(await tmp());
    const res = await importDockerArchive(other, file);
    assert.deepEqual(res.map((r) => r.name), ['docker.io/library/dup:1']);
    const m = await other.readJSON<Manifest>(res[0]!.descriptor.digest);
    assert.deepEqual(m.layers.map((l) => l.digest), [diff, diff]);
  });

  test('exportDockerArchive decompresses zstd layers', async () => {
    const { compress } = await import('zstd-napi');
    const s = await openStore(await tmp());
    const layer = await makeLayer({ 'z.txt': 'zstd\n' });
    const z = compress(layer);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
    const manifest: Manifest = {
      schemaVersion: 2, mediaType: MT.ociManifest,
      config: { mediaType: MT.ociConfig, digest: await s.putBlob(config), size: config.length },
      layers: [{ mediaType: MT.ociLayerZstd, digest: await s.putBlob(z), size: z.length }],
    };
    const mb = Buffer.from(JSON.stringify(manifest));
    await s.setRef('docker.io/library/z:1', { mediaType: MT.ociManifest, digest: await s.putBlob(mb), size: mb.length });
    const file = join(await tmp(), 'z.tar');
    await exportDockerArchive(s, ['z:1'], file);
    await run(['skopeo', 'inspect', `docker-archive:${file}`]);
    const other = await openStore(await tmp());
    const res = await importDockerArchive(other, file);
    const m2 = await other.readJSON<Manifest>(res[0]!.descriptor.digest);
    assert.deepEqual(m2.layers.map((l) => l.digest), [sha256(layer)]);
  });

  test('exporting an unknown name is NOT_FOUND', async () => {
    await assert.rejects(exportOCILayout(store, ['nope:1'], join(await tmp(), 'x')), (e) => isBerthError(e, 'NOT_FOUND'));
  });
});
