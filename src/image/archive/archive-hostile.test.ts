/**
 * Hostile archives: docker-archive and OCI-layout metadata is untrusted like a registry's.
 * Bad digests, wrong field types and oversized JSON are CORRUPT errors naming the field,
 * and nothing is named in (or written next to) the store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tar from 'tar-stream';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { sha256 } from '../../base/digest.ts';
import { openStore } from '../../content/local-store.ts';
import { importDockerArchive, importOCILayout } from './index.ts';

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'berth-archive-hostile-'));
}

async function writeArchive(file: string, members: Record<string, string | Buffer>): Promise<void> {
  const pack = tar.pack();
  for (const [name, body] of Object.entries(members)) pack.entry({ name, mode: 0o644, mtime: new Date(0) }, body);
  pack.finalize();
  await pipeline(pack, createWriteStream(file));
}

const layerTar = async (): Promise<Buffer> => {
  const pack = tar.pack();
  pack.entry({ name: 'hello.txt', mode: 0o644, mtime: new Date(0) }, 'hello\n');
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const c of pack) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

function config(over: Record<string, unknown> = {}, diffIds?: string[]): Record<string, unknown> {
  return { architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIds ?? [] }, ...over };
}

async function expectCorrupt(members: Record<string, string | Buffer>, field: RegExp): Promise<void> {
  const dir = await tmp();
  const file = join(dir, 'a.tar');
  await writeArchive(file, members);
  const store = await openStore(join(dir, 'store'));
  await assert.rejects(importDockerArchive(store, file, { name: 'x/y:1' }), (e: unknown) => {
    assert.equal((e as { code?: string }).code, 'CORRUPT', String(e));
    assert.match((e as Error).message, field);
    return true;
  });
  assert.deepEqual(await store.listRefs(), []);
  assert.deepEqual((await readdir(dir)).sort(), ['a.tar', 'store'], 'nothing written next to the store');
}

test('docker-archive: a diff_ids entry that is a path is CORRUPT before it names a file', async () => {
  const l = await layerTar();
  await expectCorrupt({
    'manifest.json': JSON.stringify([{ Config: 'c.json', Layers: ['l.tar'] }]),
    'c.json': JSON.stringify(config({}, ['sha256:../../../escaped'])),
    'l.tar': l,
  }, /rootfs\.diff_ids\[0\]/);
});

test('docker-archive: config field types', async () => {
  const l = await layerTar();
  for (const [over, field] of [[{ config: { Entrypoint: 'sh' } }, /config\.Entrypoint/], [{ config: { User: 0 } }, /config\.User/],
    [{ config: { Env: { A: '1' } } }, /config\.Env/]] as const) {
    await expectCorrupt({
      'manifest.json': JSON.stringify([{ Config: 'c.json', Layers: ['l.tar'] }]),
      'c.json': JSON.stringify(config(over, [sha256(l)])),
      'l.tar': l,
    }, field);
  }
});

test('docker-archive: manifest.json shape and size', async () => {
  await expectCorrupt({ 'manifest.json': JSON.stringify([{ Config: 'c.json', Layers: 'l.tar' }]) }, /\[0\]\.Layers/);
  await expectCorrupt({ 'manifest.json': JSON.stringify({ Config: 'c.json' }) }, /must be a list/);
  await expectCorrupt({ 'manifest.json': JSON.stringify([{ Config: 'c.json', Layers: [], RepoTags: 'x' }]) }, /RepoTags/);
  await expectCorrupt({ 'manifest.json': Buffer.alloc((4 << 20) + 10, 0x20) }, /manifest\.json is too large/);
});

test('docker-archive: JSON members are bounded in total', async () => {
  const big = Buffer.alloc(20 << 20, 0x20);
  await expectCorrupt({ 'a.json': big, 'b.json': big, 'c.json': big, 'd.json': big, 'manifest.json': '[]' }, /JSON members exceed/);
});

test('OCI layout: index.json with a path for a digest, or too large, is CORRUPT', async () => {
  for (const [index, re] of [
    [JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:../../x', size: 2 }] }), /manifests\[0\]\.digest/],
    [Buffer.alloc((4 << 20) + 1, 0x20), /too large/],
    [JSON.stringify({ schemaVersion: 2, manifests: {} }), /manifests/],
  ] as const) {
    const dir = await tmp();
    const layout = join(dir, 'layout');
    await mkdir(layout);
    await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(join(layout, 'index.json'), index);
    const store = await openStore(join(dir, 'store'));
    await assert.rejects(importOCILayout(store, layout), (e: unknown) => {
      assert.equal((e as { code?: string }).code, 'CORRUPT', String(e));
      assert.match((e as Error).message, re);
      return true;
    });
    assert.deepEqual(await store.listRefs(), []);
  }
});
