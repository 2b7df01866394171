/**
 * @module snapshot/decompress
 * A streaming decompressor per layer compression. Corrupt input surfaces as a CORRUPT
 * BerthError on the returned stream.
 */
import { createGunzip } from 'node:zlib';
import { PassThrough, type Transform } from 'node:stream';
import { DecompressStream } from 'zstd-napi';
import type { Compression } from '../oci/media-types.ts';
import { BerthError } from '../base/errors.ts';

export function createDecompressor(compression: Compression): Transform {
  switch (compression) {
    case 'gzip':
      // 1 MiB output chunks: fewer, larger writes into tar and the validator.
      return createGunzip({ chunkSize: 1 << 20 });
    case 'zstd':
      return new DecompressStream();
    case 'none':
      return new PassThrough();
    default:
      throw new BerthError('UNSUPPORTED', `unsupported layer compression ${String(compression)}`);
  }
}
