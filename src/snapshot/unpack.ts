/**
 * @module snapshot/unpack
 * One layer, from the compressed blob stream to a committed snapshot:
 *   compressed bytes → decompress (igzip / node:zlib / zstd) → sha256 (diff ID)
 *   → snapshotter.ingest (erofs: tar parser + validator + image writer; dir: GNU tar)
 *   → diff ID check → commit (atomic) | abort (nothing left).
 * Runs while the layer downloads: the puller tees the registry stream into `compressed`.
 * On error `compressed` is destroyed (the puller's tee unpipes and keeps saving the blob).
 *
 * Format choice (DEFAULT_FORMAT in index.ts = 'erofs'): the EROFS image is written
 * straight from the stream by src/snapshot/erofs (numbers in README "Snapshots"), so a
 * layer costs one sequential file write whatever its file count; 'dir' (GNU tar onto the
 * store's filesystem) stays for hosts that cannot mount EROFS.
 */
import { pipeline } from 'node:stream';
import type { Readable } from 'node:stream';
import type { Digest } from '../base/digest.ts';
import { DigestStream } from '../base/digest.ts';
import { BerthError, isBerthError, fromSystemError } from '../base/errors.ts';
import { layerCompression } from '../oci/media-types.ts';
import type { Descriptor } from '../oci/types.ts';
import { createDecompressor } from './decompress.ts';
import type { ExtractPolicy, IngestResult, SnapshotMeta, Snapshotter } from './types.ts';

export interface LayerSource {
  chainId: Digest;
  diffId: Digest;
  descriptor: Descriptor;
  /** The compressed blob bytes, as they arrive. */
  compressed: Readable;
  /** Called now and then with the decompressed bytes ingested so far. */
  onProgress?: (tarBytes: number) => void;
}

export async function unpackLayer(snapshotter: Snapshotter, src: LayerSource, policy: ExtractPolicy): Promise<SnapshotMeta> {
  const compression = layerCompression(src.descriptor.mediaType);
  if (compression === undefined) {
    src.compressed.destroy();
    throw new BerthError('UNSUPPORTED', `layer ${src.descriptor.digest}: unsupported media type ${src.descriptor.mediaType}`);
  }
  const active = await snapshotter.prepare(src.chainId, { sizeHint: src.descriptor.size }).catch((e: unknown) => {
    src.compressed.destroy();
    throw e;
  });
  try {
    const hashed = new DigestStream('sha256');
    const piped = new Promise<void>((resolve, reject) => {
      pipeline(src.compressed, createDecompressor(compression), hashed, (e) => (e ? reject(e) : resolve()));
    });
    piped.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    if (src.onProgress) {
      const report = src.onProgress;
      timer = setInterval(() => report(hashed.bytes), 100);
      timer.unref();
    }
    let result: IngestResult;
    try {
      result = await snapshotter.ingest(active, hashed, policy);
    } catch (e) {
      // a decompression error makes tar/validator fail too; report the root cause
      const cause = await piped.then(() => undefined, (p: unknown) => p);
      if (cause && !isBerthError(e, 'HOSTILE_LAYER') && !isBerthError(cause)) {
        throw new BerthError('CORRUPT', `layer ${src.descriptor.digest}: cannot decompress (${compression}): ${(cause as Error).message}`, { cause });
      }
      throw isBerthError(cause) && !isBerthError(e, 'HOSTILE_LAYER') ? cause : e;
    } finally {
      if (timer) clearInterval(timer);
    }
    await piped.catch((e: unknown) => {
      throw isBerthError(e) ? e : new BerthError('CORRUPT', `layer ${src.descriptor.digest}: ${(e as Error).message}`, { cause: e });
    });
    const got = hashed.digest();
    if (got !== src.diffId) {
      throw new BerthError('DIGEST_MISMATCH', `layer ${src.descriptor.digest}: diff ID is ${got}, config says ${src.diffId}`, {
        details: { expected: src.diffId, actual: got },
      });
    }
    const meta: SnapshotMeta = {
      chainId: src.chainId, diffId: src.diffId, entries: result.entries, bytes: result.tarBytes, created: new Date().toISOString(),
    };
    await snapshotter.commit(active, meta);
    return meta;
  } catch (e) {
    await snapshotter.abort(active).catch(() => {});
    throw isBerthError(e) ? e : fromSystemError(e);
  }
}
