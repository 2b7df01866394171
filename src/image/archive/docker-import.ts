/**
 * @module image/archive/docker-import
 * Import a `docker save` tarball: manifest.json lists, per image, the config file, the
 * RepoTags and the layer files, either legacy (`<id>/layer.tar`, `<hex>.json`) or the
 * OCI-ish layout newer Docker writes (`blobs/sha256/<hex>`).
 *
 * Decision: layers are stored as the archive carries them, and legacy uncompressed
 * layer.tar files become `application/vnd.oci.image.layer.v1.tar` blobs whose digest is
 * the diff_id from the config (so the store verifies each layer against the config on
 * the way in, and nothing is recompressed: import is pure I/O). A layer under
 * blobs/sha256/ keeps its digest; gzip/zstd content (sniffed by magic bytes) gets the
 * matching +gzip/+zstd media type. The config is stored byte for byte. An OCI manifest is
 * written per image, and each RepoTag is set as a ref (normalized to the full name).
 *
 * Two streaming passes: the first keeps only manifest.json, JSON files and symlinks (the
 * metadata can come after the layers in tar order); the second streams each layer
 * member straight into store.ingest. Docker writes repeated layers as symlinks to one
 * member; those are resolved.
 */
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { isDigest, type Digest } from '../../base/digest.ts';
import { BerthError } from '../../base/errors.ts';
import type { ContentStore } from '../../content/types.ts';
import { MT } from '../../oci/media-types.ts';
import type { Descriptor, Manifest } from '../../oci/types.ts';
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, parseConfig, parseJSONDocument } from '../../oci/validate.ts';
import { ingestChunks } from './blobs.ts';
import { normalizeName } from './names.ts';
import type { ImportedImage, ImportOptions } from './oci-import.ts';
import { forEachEntry, memberPath, readEntry } from './tar-read.ts';

interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** Metadata members larger than this are not buffered in pass 1 (a config's limit). */
const MAX_META = MAX_CONFIG_BYTES;
/** Total bytes of JSON and blobs/ members buffered in pass 1 (configs live there in new archives). */
const MAX_META_TOTAL = 64 << 20;
/** At most this many JSON members are buffered (an archive holds one config per image). */
const MAX_JSON_MEMBERS = 1024;

function mediaTypeFor(head: Buffer): string {
  if (head[0] === 0x1f && head[1] === 0x8b) return MT.ociLayerGzip;
  if (head.readUInt32LE(0) === 0xfd2fb528) return MT.ociLayerZstd;
  return MT.ociLayer;
}

/** Digest a member path implies (`blobs/sha256/<hex>`), if any. */
function pathDigest(path: string): Digest | undefined {
  const m = /^blobs\/(sha256|sha512)\/([0-9a-f]+)$/.exec(path);
  const d = m ? `${m[1]}:${m[2]}` : '';
  return isDigest(d) ? d : undefined;
}

export async function importDockerArchive(store: ContentStore, tarFile: string, opts: ImportOptions = {}): Promise<ImportedImage[]> {
  // Pass 1: metadata.
  const meta = new Map<string, Buffer>();
  const links = new Map<string, string>();
  let buffered = 0;
  let jsonMembers = 0;
  await forEachEntry(tarFile, async (path, entry) => {
    const h = entry.header;
    if (h.type === 'symlink' || h.type === 'link') {
      const target = h.linkname ?? '';
      links.set(path, memberPath(h.type === 'symlink' ? posix.join(posix.dirname(path), target) : target));
    } else if (path === 'manifest.json' && h.type === 'file' && (h.size ?? 0) > MAX_MANIFEST_BYTES) {
      throw new BerthError('CORRUPT', `${tarFile}: manifest.json is too large (${h.size} bytes, limit ${MAX_MANIFEST_BYTES})`);
    } else if (h.type === 'file' && h.size <= MAX_META) {
      const isJSON = path === 'manifest.json' || path.endsWith('.json');
      if (isJSON && ++jsonMembers > MAX_JSON_MEMBERS) throw new BerthError('CORRUPT', `${tarFile}: more than ${MAX_JSON_MEMBERS} JSON members`);
      // JSON members count towards the total too: many big *.json must not fill memory
      if ((isJSON || path.startsWith('blobs/')) && buffered + h.size <= MAX_META_TOTAL) {
        buffered += h.size;
        meta.set(path, await readEntry(entry));
      } else if (isJSON) {
        throw new BerthError('CORRUPT', `${tarFile}: JSON members exceed ${MAX_META_TOTAL} bytes in total`);
      }
    }
  });
  const resolve = (p: string): string => {
    let cur = memberPath(p);
    for (let i = 0; i < 16 && links.has(cur); i++) cur = links.get(cur)!;
    return cur;
  };
  const mf = meta.get('manifest.json');
  if (!mf) throw new BerthError('CORRUPT', `${tarFile}: no manifest.json (not a docker-archive)`);
  const entries = parseJSONDocument(mf, `${tarFile}: manifest.json`, MAX_MANIFEST_BYTES) as DockerManifestEntry[];
  const bad = (i: number, field: string, want: string): BerthError =>
    new BerthError('CORRUPT', `${tarFile}: manifest.json: field "[${i}].${field}" must be ${want}`, { details: { field: `[${i}].${field}` } });
  if (!Array.isArray(entries)) throw new BerthError('CORRUPT', `${tarFile}: manifest.json must be a list`);
  entries.forEach((e, i) => {
    if (typeof e !== 'object' || e === null) throw bad(i, '', 'a map');
    if (typeof e.Config !== 'string') throw bad(i, 'Config', 'a string');
    if (!Array.isArray(e.Layers) || e.Layers.some((l) => typeof l !== 'string')) throw bad(i, 'Layers', 'a list of strings');
    if (e.RepoTags != null && (!Array.isArray(e.RepoTags) || e.RepoTags.some((t) => typeof t !== 'string'))) throw bad(i, 'RepoTags', 'a list of strings');
  });

  // Configs, and the digest each layer member must have.
  const want = new Map<string, { digest: Digest; size?: number }>(); // member path -> expected
  const images = entries.map((e) => {
    const raw = meta.get(resolve(e.Config));
    if (!raw) throw new BerthError('CORRUPT', `${tarFile}: config ${e.Config} missing`);
    const config = parseConfig(raw, `${tarFile}: config ${e.Config}`);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== e.Layers.length) {
      throw new BerthError('CORRUPT', `${tarFile}: ${e.Config} lists ${diffIds.length} diff_ids but manifest.json ${e.Layers.length} layers`);
    }
    e.Layers.forEach((l, i) => {
      const p = resolve(l);
      want.set(p, { digest: pathDigest(p) ?? diffIds[i]! });
    });
    return { entry: e, raw, layerPaths: e.Layers.map(resolve) };
  });

  // Pass 2: layers, streamed into the store.
  const layerDesc = new Map<string, Descriptor>();
  await forEachEntry(tarFile, async (path, entry) => {
    const w = want.get(path);
    if (!w || entry.header.type !== 'file' || layerDesc.has(path)) return;
    const size = entry.header.size ?? 0;
    let head: Buffer | undefined;
    const it = entry[Symbol.asyncIterator]();
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let r = await it.next(); !r.done; r = await it.next()) {
        const chunk = r.value as Buffer;
        head ??= chunk;
        yield chunk;
      }
    }
    const cached = meta.get(path); // a small layer was already buffered in pass 1
    await ingestChunks(store, { digest: w.digest, size }, cached ? Readable.from([cached]) : chunks());
    if (cached) head = cached;
    const mediaType = mediaTypeFor(head ?? (await store.readBlob(w.digest)).subarray(0, 4));
    layerDesc.set(path, { mediaType, digest: w.digest, size });
  });

  const out: ImportedImage[] = [];
  for (const img of images) {
    const configDigest = await store.putBlob(img.raw);
    const layers = img.layerPaths.map((p) => {
      const d = layerDesc.get(p);
      if (!d) throw new BerthError('CORRUPT', `${tarFile}: layer ${p} missing`);
      return d;
    });
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: { mediaType: MT.ociConfig, digest: configDigest, size: img.raw.length },
      layers,
    };
    const mb = Buffer.from(JSON.stringify(manifest));
    const descriptor: Descriptor = { mediaType: MT.ociManifest, digest: await store.putBlob(mb), size: mb.length };
    const tags = img.entry.RepoTags ?? [];
    const names = tags.length > 0 ? tags.map(normalizeName) : opts.name !== undefined && images.length === 1 ? [normalizeName(opts.name)] : [];
    for (const n of names) await store.setRef(n, descriptor);
    if (names.length === 0) out.push({ digest: descriptor.digest, descriptor });
    for (const n of names) out.push({ name: n, digest: descriptor.digest, descriptor });
  }
  return out;
}
