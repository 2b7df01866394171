/**
 * @module snapshot/erofs
 * The in-process EROFS writer: one layer tar stream in, one image file out, no extraction
 * and no privilege (see builder.ts for the layout, tar.ts for what is parsed).
 */
import { open, rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { BerthError, fromSystemError, isBerthError } from '../../base/errors.ts';
import type { ExtractPolicy } from '../types.ts';
import { LayerImageBuilder, type BuildStats } from './builder.ts';
import { TarParser } from './tar.ts';

export type { BuildStats } from './builder.ts';

export interface LayerImageResult extends BuildStats {
  /** Decompressed tar bytes read (the whole stream, trailing padding included). */
  tarBytes: number;
}

/**
 * Reads the decompressed layer tar `input` to its end and writes the EROFS image to
 * `imagePath` (created; must not exist). Rejects with HOSTILE_LAYER / UNSUPPORTED /
 * CORRUPT / NO_SPACE, destroys `input` and removes the image on any error.
 */
export async function writeLayerImage(input: Readable, imagePath: string, policy: ExtractPolicy): Promise<LayerImageResult> {
  const fh = await open(imagePath, 'wx', 0o644).catch((e: unknown) => {
    input.destroy();
    throw fromSystemError(e);
  });
  const builder = new LayerImageBuilder(fh, policy, `${imagePath}.tails`);
  const parser = new TarParser(builder);
  let tarBytes = 0;
  let parseMs = 0;
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      tarBytes += chunk.length;
      if (tarBytes > policy.maxBytes) {
        throw new BerthError('HOSTILE_LAYER', `hostile layer: decompresses beyond ${policy.maxBytes} bytes (limit)`, { details: { limit: policy.maxBytes } });
      }
      const t0 = performance.now();
      parser.push(chunk);
      parseMs += performance.now() - t0;
      const wait = builder.backpressure();
      if (wait) await wait;
    }
    parser.end();
    const stats = await builder.finish();
    await fh.close();
    return { ...stats, parseMs, tarBytes };
  } catch (e) {
    input.destroy();
    builder.close();
    await fh.close().catch(() => {});
    await rm(imagePath, { force: true });
    throw isBerthError(e) ? e : fromSystemError(e);
  }
}
