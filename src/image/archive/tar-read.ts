/**
 * @module image/archive/tar-read
 * Streaming passes over a tar file with tar-stream. An archive is read at most twice
 * (once for the small JSON metadata, once for the layers) instead of being unpacked to
 * disk or held in memory.
 */
import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { Extract } from 'tar-stream';

/** One tar member as tar-stream yields it (a streamx Readable with its header). */
export type Entry = Extract extends AsyncIterable<infer T> ? T : never;
import { BerthError, wrap } from '../../base/errors.ts';

/** Normalizes a tar member path (`./a//b` → `a/b`). */
export function memberPath(name: string): string {
  return posix.normalize(name).replace(/^(\.\/)+/, '').replace(/^\/+/, '');
}

/**
 * Calls onEntry for each member in order. The callback must consume the entry (read it or
 * resume() it) before the next one is produced; entries it ignores are drained.
 */
export async function forEachEntry(file: string, onEntry: (path: string, entry: Entry) => Promise<void>): Promise<void> {
  const extract = tar.extract();
  const feeding = pipeline(createReadStream(file), extract);
  try {
    for await (const entry of extract) {
      const path = memberPath(entry.header.name);
      await onEntry(path, entry);
      entry.resume(); // drain whatever the callback did not read
    }
    await feeding;
  } catch (e) {
    extract.destroy();
    await feeding.catch(() => {});
    if (e instanceof Error && /unexpected end|invalid tar|invalid header/i.test(e.message)) {
      throw new BerthError('CORRUPT', `${file}: not a valid tar archive (${e.message})`, { cause: e });
    }
    throw wrap(`reading ${file}`, e);
  }
}

/** Reads a whole (small) entry into memory. */
export async function readEntry(entry: Entry): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of entry) parts.push(c as Buffer);
  return Buffer.concat(parts);
}
