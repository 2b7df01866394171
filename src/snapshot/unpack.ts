/**
 * @module snapshot/unpack
 * One layer, from the compressed blob stream to a committed snapshot:
 *   compressed bytes → decompress (igzip / node:zlib / zstd) → sha256 (diff ID)
 *   → snapshotter.ingest (erofs: tar parser + validator + image writer; dir: GNU tar)
 *   → diff ID check → commit (atomic) | abort (nothing left).
 * The middle part is inflate.ts; a snapshotter with `ingestCompressed` runs it itself
 * (erofs: in a worker thread for big layers, see unpack-worker.ts).
 * Runs while the layer downloads: the puller tees the registry stream into `compressed`.
 * On error `compressed` is destroyed (the puller's tee unpipes and keeps saving the blob).
 *
 * Format choice (DEFAULT_FORMAT in index.ts = 'erofs'): the EROFS image is written
 * straight from the stream by src/snapshot/erofs (numbers in README "Snapshots"), so a
 * layer costs one sequential file write whatever its file count; 'dir' (GNU tar onto the
 * store's filesystem) stays for hosts that cannot mount EROFS.
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../base/digest.ts';
import { BerthError, isBerthError, fromSystemError } from '../base/errors.ts';
import { layerCompression } from '../oci/media-types.ts';
import type { Descriptor } from '../oci/types.ts';
import { inflateInto } from './inflate.ts';
import type { ExtractPolicy, SnapshotMeta, Snapshotter } from './types.ts';

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
    const what = src.descriptor.digest;
    const { result, diffId: got } = snapshotter.ingestCompressed
      ? await snapshotter.ingestCompressed(active, { compressed: src.compressed, compression, what, size: src.descriptor.size, onProgress: src.onProgress }, policy)
      : await inflateInto(src.compressed, compression, what, (tar) => snapshotter.ingest(active, tar, policy), src.onProgress, src.descriptor.size);
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
