/**
 * @module test/integration/snapshot-helpers
 * Builds tiny OCI image layouts from layer tars for the snapshot tests, and unpacks them
 * with berth's snapshot store.
 */
import { createReadStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { sha256, type Digest } from '../../src/base/digest.ts';
import { chainIds } from '../../src/oci/chain-id.ts';
import type { SnapshotStore } from '../../src/snapshot/store.ts';
import type { Descriptor, ImageConfig, Index, Manifest } from '../../src/oci/types.ts';
import { MT } from '../../src/oci/media-types.ts';

export interface BuiltImage {
  layout: string;
  layers: Descriptor[];
  diffIds: Digest[];
  chainIds: Digest[];
}

async function putBlob(layout: string, data: Buffer): Promise<Digest> {
  const d = sha256(data);
  await writeFile(join(layout, 'blobs', 'sha256', d.slice(7)), data);
  return d;
}

/** Writes an OCI layout with one image ("latest") whose layers are the given gzip blobs. */
export async function buildLayout(layout: string, gzLayers: Buffer[], mediaType: string = MT.ociLayerGzip): Promise<BuiltImage> {
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const layers: Descriptor[] = [];
  const diffIds: Digest[] = [];
  for (const gz of gzLayers) {
    layers.push({ mediaType, digest: await putBlob(layout, gz), size: gz.length });
    diffIds.push(sha256(mediaType === MT.ociLayerGzip ? gunzipSync(gz) : gz));
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIds } }));
  const cfg: Descriptor = { mediaType: MT.ociConfig, digest: await putBlob(layout, config), size: config.length };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config: cfg, layers }));
  const md = await putBlob(layout, manifest);
  const index = {
    schemaVersion: 2,
    manifests: [{ mediaType: MT.ociManifest, digest: md, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
  };
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
  return { layout, layers, diffIds, chainIds: chainIds(diffIds) };
}

/** Unpacks every layer of img into store (sequentially, from the blob files). */
export async function unpackAll(store: SnapshotStore, img: BuiltImage): Promise<void> {
  for (let i = 0; i < img.layers.length; i++) {
    const desc = img.layers[i] as Descriptor;
    await store.unpack({
      chainId: img.chainIds[i] as Digest,
      diffId: img.diffIds[i] as Digest,
      descriptor: desc,
      compressed: createReadStream(join(img.layout, 'blobs', 'sha256', desc.digest.slice(7))),
    });
  }
}

/** Reads the first image of an existing OCI layout (e.g. the bench images). */
export async function layoutImage(layout: string): Promise<BuiltImage> {
  const blob = async <T>(d: string): Promise<T> => JSON.parse(await readFile(join(layout, 'blobs', 'sha256', d.slice(7)), 'utf8')) as T;
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as Index;
  const manifest = await blob<Manifest>((index.manifests[0] as Descriptor).digest);
  const config = await blob<ImageConfig>(manifest.config.digest);
  return { layout, layers: manifest.layers, diffIds: config.rootfs.diff_ids, chainIds: chainIds(config.rootfs.diff_ids) };
}
