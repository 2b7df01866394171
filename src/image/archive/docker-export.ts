/**
 * @module image/archive/docker-export
 * Export images as a docker-archive tarball, the format `docker load`, `podman load` and
 * `skopeo copy docker-archive:FILE ...` read:
 *
 *   manifest.json        [{Config, RepoTags, Layers}] one entry per image
 *   <config-hex>.json    the image config, byte for byte (its digest is the image ID)
 *   <diffid-hex>/layer.tar   each layer *uncompressed* (Docker requires that)
 *   repositories         legacy {repo: {tag: top-layer-id}} map, for old loaders
 *
 * Compressed layers are decompressed on the fly (gzip: node:zlib, zstd: zstd-napi). A tar
 * header needs the size up front, so a compressed layer is decompressed twice: once to
 * count bytes and check the result against the config's diff_id, once into the archive.
 * That costs CPU, not memory or temp disk. An index is resolved to one manifest present in
 * the store (the host platform when several are). The tarball appears atomically.
 */
import { createWriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { open, rename, unlink } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Writable, type Readable } from 'node:stream';
import tar from 'tar-stream';
import { digestHex, newHasher, type Digest } from '../../base/digest.ts';
import { BerthError, wrap } from '../../base/errors.ts';
import { fsyncDir, tempPathFor } from '../../base/fs.ts';
import type { ContentStore, Provider } from '../../content/types.ts';
import { layerCompression } from '../../oci/media-types.ts';
import type { Descriptor, ImageConfig } from '../../oci/types.ts';
import { decompressorFor, resolveManifest } from './blobs.ts';
import { repoTag } from './names.ts';
import { lookupRefs, type ImageSelector } from './refs.ts';

interface LayerPlan {
  desc: Descriptor;
  diffId: Digest;
  /** Uncompressed size (known after the counting pass). */
  size: number;
  path: string;
}

async function uncompressed(store: Provider, desc: Descriptor): Promise<Readable> {
  const dec = await decompressorFor(desc.mediaType);
  const src = store.openRead(desc.digest);
  if (!dec) return src;
  src.on('error', (e) => dec.destroy(e));
  return src.pipe(dec);
}

/** Counting pass: uncompressed size, checked against the diff_id. */
async function measure(store: Provider, desc: Descriptor, diffId: Digest): Promise<number> {
  if (layerCompression(desc.mediaType) === 'none') return desc.size;
  const h = newHasher('sha256');
  let n = 0;
  await pipeline(
    await uncompressed(store, desc),
    new Writable({
      write(chunk: Buffer, _e, cb) {
        h.update(chunk);
        n += chunk.length;
        cb();
      },
    }),
  );
  const got = `sha256:${h.digest('hex')}`;
  if (got !== diffId) {
    throw new BerthError('DIGEST_MISMATCH', `layer ${desc.digest} uncompresses to ${got}, config says ${diffId}`, { details: { expected: diffId, actual: got } });
  }
  return n;
}

export async function exportDockerArchive(store: ContentStore, refs: readonly ImageSelector[], tarFile: string): Promise<void> {
  const images = await lookupRefs(store, refs);
  // Group names by manifest: one manifest.json entry per image, with all its tags.
  const byManifest = new Map<string, { configDesc: Descriptor; config: ImageConfig; configRaw: Buffer; layers: LayerPlan[]; tags: string[] }>();
  for (const img of images) {
    const { manifestDesc, manifest } = await resolveManifest(store, img.descriptor);
    let entry = byManifest.get(manifestDesc.digest);
    if (!entry) {
      const configRaw = await store.readBlob(manifest.config.digest);
      const config = JSON.parse(configRaw.toString('utf8')) as ImageConfig;
      const diffIds = config.rootfs?.diff_ids ?? [];
      if (diffIds.length !== manifest.layers.length) {
        throw new BerthError('CORRUPT', `image ${img.name}: ${manifest.layers.length} layers but ${diffIds.length} diff_ids`);
      }
      const layers = manifest.layers.map((desc, i) => ({ desc, diffId: diffIds[i]!, size: -1, path: `${digestHex(diffIds[i]!)}/layer.tar` }));
      entry = { configDesc: manifest.config, config, configRaw, layers, tags: [] };
      byManifest.set(manifestDesc.digest, entry);
    }
    const tag = repoTag(img.name);
    if (tag && !entry.tags.includes(tag)) entry.tags.push(tag);
  }

  const written = new Set<string>();
  const manifestJSON: Array<{ Config: string; RepoTags: string[] | null; Layers: string[] }> = [];
  const repositories: Record<string, Record<string, string>> = {};
  for (const e of byManifest.values()) {
    for (const l of e.layers) l.size = await measure(store, l.desc, l.diffId);
    manifestJSON.push({ Config: `${digestHex(e.configDesc.digest)}.json`, RepoTags: e.tags.length ? e.tags : null, Layers: e.layers.map((l) => l.path) });
    const top = e.layers.at(-1);
    for (const t of e.tags) {
      const i = t.lastIndexOf(':');
      if (top) (repositories[t.slice(0, i)] ??= {})[t.slice(i + 1)] = digestHex(top.diffId);
    }
  }

  const tmp = tempPathFor(tarFile);
  const pack = tar.pack();
  const out = pipeline(pack, createWriteStream(tmp, { mode: 0o644 }));
  const mtime = new Date(0);
  const addBuffer = (name: string, data: Buffer): Promise<void> =>
    new Promise((resolve, reject) => pack.entry({ name, size: data.length, mode: 0o644, mtime }, data, (err) => (err ? reject(err) : resolve())));
  try {
    for (const e of byManifest.values()) {
      const cfgName = `${digestHex(e.configDesc.digest)}.json`;
      if (!written.has(cfgName)) {
        await addBuffer(cfgName, e.configRaw);
        written.add(cfgName);
      }
      for (const l of e.layers) {
        if (written.has(l.path)) continue;
        written.add(l.path);
        pack.entry({ name: dirname(l.path), type: 'directory', mode: 0o755, mtime });
        const sinkEntry = pack.entry({ name: l.path, size: l.size, mode: 0o644, mtime });
        await pipeline(await uncompressed(store, l.desc), sinkEntry as unknown as Writable);
      }
    }
    await addBuffer('manifest.json', Buffer.from(JSON.stringify(manifestJSON)));
    await addBuffer('repositories', Buffer.from(JSON.stringify(repositories)));
    pack.finalize();
    await out;
    const fh = await open(tmp, 'r');
    await fh.sync().finally(() => fh.close());
    await rename(tmp, tarFile);
    await fsyncDir(dirname(tarFile));
  } catch (e) {
    pack.destroy();
    await out.catch(() => {});
    await unlink(tmp).catch(() => {});
    throw wrap(`exporting to ${tarFile}`, e);
  }
}
