/**
 * @module snapshot/decompress
 * A streaming decompressor per layer compression. Corrupt input surfaces as a CORRUPT
 * BerthError on the returned stream.
 */
import { createGunzip } from 'node:zlib';
import { PassThrough, type Transform } from 'node:stream';
import { createRequire } from 'node:module';
import type { Compression } from '../oci/media-types.ts';
import { BerthError } from '../base/errors.ts';

type ZstdModule = { DecompressStream: new () => Transform };
let zstd: ZstdModule | undefined;
/** zstd-napi is a native addon: loaded on the first zstd layer, not on every berth start. */
function zstdModule(): ZstdModule {
  zstd ??= createRequire(import.meta.url)('zstd-napi') as ZstdModule;
  return zstd;
}

export function createDecompressor(compression: Compression): Transform {
  switch (compression) {
    case 'gzip':
      // 1 MiB output chunks: fewer, larger writes into tar and the validator.
      return createGunzip({ chunkSize: 1 << 20 });
    case 'zstd':
      return new (zstdModule().DecompressStream)();
    case 'none':
      return new PassThrough();
    default:
      throw new BerthError('UNSUPPORTED', `unsupported layer compression ${String(compression)}`);
  }
}
