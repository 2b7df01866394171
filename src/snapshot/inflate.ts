/**
 * @module snapshot/inflate
 * The middle of one layer's unpack, shared by the main thread and the unpack worker:
 *   compressed bytes → decompress (igzip / zstd child, node:zlib, zstd-napi) → sha256
 *   (diff ID) → a sink that reads the tar to its end (the EROFS writer, GNU tar).
 * A failure is reported by its root cause: a decompression error makes the tar reader fail
 * too, and the caller should hear "cannot decompress", not "truncated archive" — except
 * when the reader found the layer hostile, which wins.
 */
import { pipeline, type Readable } from 'node:stream';
import type { Digest } from '../base/digest.ts';
import { DigestStream } from '../base/digest.ts';
import { BerthError, isBerthError } from '../base/errors.ts';
import type { Compression } from '../oci/media-types.ts';
import { createDecompressor } from './decompress.ts';

/** Runs `sink` on the decompressed stream; resolves with its result and the diff ID. `size`: compressed bytes, if known. */
export async function inflateInto<R>(
  compressed: Readable,
  compression: Compression,
  what: string,
  sink: (tar: Readable) => Promise<R>,
  onProgress?: (tarBytes: number) => void,
  size?: number,
): Promise<{ result: R; diffId: Digest; tarBytes: number }> {
  const hashed = new DigestStream('sha256');
  const piped = new Promise<void>((resolve, reject) => {
    pipeline(compressed, createDecompressor(compression, size), hashed, (e) => (e ? reject(e) : resolve()));
  });
  piped.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  if (onProgress) {
    timer = setInterval(() => onProgress(hashed.bytes), 100);
    timer.unref();
  }
  let result: R;
  try {
    result = await sink(hashed);
  } catch (e) {
    const cause = await piped.then(() => undefined, (p: unknown) => p);
    if (cause && !isBerthError(e, 'HOSTILE_LAYER') && !isBerthError(cause)) {
      throw new BerthError('CORRUPT', `layer ${what}: cannot decompress (${compression}): ${(cause as Error).message}`, { cause });
    }
    throw isBerthError(cause) && !isBerthError(e, 'HOSTILE_LAYER') ? cause : e;
  } finally {
    if (timer) clearInterval(timer);
  }
  await piped.catch((e: unknown) => {
    throw isBerthError(e) ? e : new BerthError('CORRUPT', `layer ${what}: ${(e as Error).message}`, { cause: e });
  });
  return { result, diffId: hashed.digest(), tarBytes: hashed.bytes };
}
