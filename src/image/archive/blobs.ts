/**
 * @module image/archive/blobs
 * The small amount of plumbing every import and export shares: pushing a byte stream
 * through ContentStore.ingest (so every imported blob is verified against its digest),
 * resolving an image ref to one platform manifest, and layer decompression.
 */
import { createRequire } from 'node:module';
import { createGunzip } from 'node:zlib';
import { Writable, type Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError } from '../../base/errors.ts';
import { isIndexType, isManifestType, layerCompression, MT } from '../../oci/media-types.ts';
import type { Descriptor, Index, Manifest } from '../../oci/types.ts';
import { validateIndex, validateManifest } from '../../oci/validate.ts';
import type { Ingester, Provider } from '../../content/types.ts';
import { hostPlatform, selectManifest } from '../platform.ts';

/** Writes chunks into the store as the blob `expected`, verifying it; no-op if present. */
export async function ingestChunks(
  store: Ingester,
  expected: Pick<Descriptor, 'digest' | 'size'>,
  chunks: AsyncIterable<Buffer> | ((offset: number) => AsyncIterable<Buffer> | Readable),
): Promise<void> {
  const w = await store.ingest(expected);
  if (w.committed) {
    if (typeof chunks !== 'function') for await (const _ of chunks) void _; // drain (e.g. a tar entry)
    return;
  }
  try {
    let src: AsyncIterable<Buffer> | Readable;
    if (typeof chunks === 'function') {
      src = chunks(w.offset);
    } else {
      if (w.offset > 0) {
        // Cannot seek this source: restart the blob from zero.
        await w.abort(false);
        return ingestChunks(store, expected, chunks);
      }
      src = chunks;
    }
    await pipeline(src, w.stream);
    await w.commit();
  } catch (e) {
    await w.abort(true).catch(() => {});
    throw e;
  }
}

/** A writable that throws away what it gets (for draining). */
export function sink(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

/**
 * A decompressor for the layer's media type, or undefined for an uncompressed layer.
 * zstd-napi is a native addon: loaded only when a zstd layer is actually met.
 */
export async function decompressorFor(mediaType: string): Promise<Transform | undefined> {
  const c = layerCompression(mediaType);
  if (c === 'gzip') return createGunzip();
  if (c === 'zstd') {
    // require, not import(): bin/launch.cjs runs the bundle as a vm.Script, where Node 20
    // has no loader for a dynamic import() (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING)
    const { DecompressStream } = createRequire(import.meta.url)('zstd-napi') as typeof import('zstd-napi');
    return new DecompressStream();
  }
  if (c === 'none') return undefined;
  throw new BerthError('UNSUPPORTED', `unsupported layer media type ${mediaType}`, { details: { mediaType } });
}

export interface ResolvedImage {
  /** The descriptor the ref names (index or manifest). */
  top: Descriptor;
  /** The platform manifest chosen (the same as top for a single-platform image). */
  manifestDesc: Descriptor;
  manifest: Manifest;
}

/** Follows a ref's descriptor to one image manifest, choosing among present platforms. */
export async function resolveManifest(store: Provider, top: Descriptor): Promise<ResolvedImage> {
  let d = top;
  for (let depth = 0; depth < 4; depth++) {
    if (isManifestType(d.mediaType)) {
      return { top, manifestDesc: d, manifest: validateManifest(await store.readJSON<unknown>(d.digest), `manifest ${d.digest}`) };
    }
    if (!isIndexType(d.mediaType)) {
      throw new BerthError('UNSUPPORTED', `${d.digest}: media type ${d.mediaType} is not an image`, { details: { mediaType: d.mediaType } });
    }
    const index = validateIndex(await store.readJSON<unknown>(d.digest), `index ${d.digest}`);
    const present: Descriptor[] = [];
    for (const m of index.manifests) if (await store.has(m.digest)) present.push(m);
    const first = present[0];
    if (!first) throw new BerthError('NOT_FOUND', `index ${d.digest}: none of its manifests is in the store`, { details: { digest: d.digest } });
    d = present.length === 1 || present.every((m) => !m.platform) ? first : selectManifest(present, hostPlatform());
  }
  throw new BerthError('CORRUPT', `${top.digest}: indexes nested too deeply`);
}

/** Media types to write for OCI images we synthesize. */
export const OCI = { manifest: MT.ociManifest, config: MT.ociConfig, layer: MT.ociLayer } as const;
