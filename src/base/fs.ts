/**
 * @module base/fs
 * Crash-safe file primitives. A file that other code trusts (index.json, a committed blob,
 * a unit file) must never be seen half-written: write to a temp file in the same directory,
 * fsync it, rename over the target, then fsync the directory so the rename itself survives
 * a power cut. ENOSPC/EDQUOT surface as NO_SPACE through fromSystemError.
 */
import { open, mkdir, rename, unlink } from 'node:fs/promises';
import { closeSync, fsyncSync, openSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, basename, join } from 'node:path';
import { fromSystemError } from './errors.ts';

export interface WriteAtomicOptions {
  /** File mode of the result (default 0o644). */
  mode?: number;
}

/** fsyncs a directory so renames/creates inside it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsyncDir in synchronous calls, for code that does its file operations that way. */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A unique temp path next to `path` (same filesystem, so rename is atomic). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Writes data to path atomically: temp file + fsync + rename + fsync(dir). */
export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: WriteAtomicOptions = {}): Promise<void> {
  const tmp = tempPathFor(path);
  const mode = opts.mode ?? 0o644;
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(data);
      await fh.chmod(mode); // umask may have narrowed the create mode
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    await fsyncDir(dirname(path));
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw fromSystemError(e);
  }
}

/**
 * Files of one directory, each atomically (temp + fsync + rename): all written and
 * fsynced at once, renamed, then one fsync of the directory, instead of two fsyncs per
 * file one after the other (a create writes 5-7 drop-ins and as many network files).
 * A failure removes the temps.
 */
export async function writeFilesAtomic(dir: string, files: readonly { file: string; text: string }[], mode = 0o644): Promise<void> {
  const temps = files.map((f) => ({ tmp: tempPathFor(join(dir, f.file)), path: join(dir, f.file), text: f.text }));
  try {
    await Promise.all(temps.map(async (t) => {
      const fh = await open(t.tmp, 'wx', mode);
      try {
        await fh.writeFile(t.text);
        await fh.chmod(mode); // umask may have narrowed the create mode
        await fh.sync();
      } finally {
        await fh.close();
      }
    }));
    for (const t of temps) await rename(t.tmp, t.path);
    await fsyncDir(dir);
  } catch (e) {
    await Promise.all(temps.map((t) => unlink(t.tmp).catch(() => {})));
    throw fromSystemError(e);
  }
}

/** mkdir -p with a mode (default 0o755); existing directories are left alone. */
export async function ensureDir(path: string, mode = 0o755): Promise<void> {
  try {
    await mkdir(path, { recursive: true, mode });
  } catch (e) {
    throw fromSystemError(e);
  }
}


/** unlink(2), synchronously; a path that is already gone (or cannot be removed) is left be. */
export function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}

/** True when the error is a Node system error with this errno code. */
export function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === code;
}
