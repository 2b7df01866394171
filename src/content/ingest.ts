/**
 * @module content/ingest
 * The writer behind ContentStore.ingest: bytes go to ingest/<alg>-<hex>.partial and are
 * hashed as they are written; commit() checks size and digest, fsyncs and renames the
 * partial into blobs/. Nothing unverified is ever visible under blobs/.
 *
 * Exclusivity: the writer holds locks/ingest-<hex>.lock from creation until commit/abort,
 * so two pulls of one blob (in one process or two) never interleave; the second waits and
 * then finds the blob committed. Resume: a partial left by abort(true) or by a killed
 * process is re-hashed from disk when the next writer opens it, and `offset` tells the
 * caller where to continue (e.g. an HTTP Range request).
 */
import { createReadStream } from 'node:fs';
import { open, rename, stat, unlink, chmod, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { dirname } from 'node:path';
import type { Hash } from 'node:crypto';
import { digestAlgorithm, newHasher, type Digest } from '../base/digest.ts';
import { BerthError, fromSystemError } from '../base/errors.ts';
import { fsyncDir, isErrno } from '../base/fs.ts';
import { acquireLock, type Lock } from '../base/lock.ts';
import type { LayoutPaths } from './layout.ts';
import type { IngestOptions, IngestWriter } from './types.ts';

export const BLOB_MODE = 0o644;

/** A writer for a blob that already exists: nothing to do. */
export function committedWriter(size: number): IngestWriter {
  return {
    committed: true,
    offset: size,
    stream: new Writable({ write: (_c, _e, cb) => cb() }),
    commit: async () => {},
    abort: async () => {},
  };
}

/**
 * True when the blob is committed. Also refreshes its ctime (chmod), which gc reads as
 * "recently claimed": a pull that reuses an old unreferenced blob is protected from gc
 * for the grace period, exactly like a freshly downloaded one. Called under the ingest
 * lock, which gc also takes before deleting, so claim and delete never interleave.
 */
async function claimIfCommitted(path: string): Promise<boolean> {
  try {
    await chmod(path, BLOB_MODE);
    return true;
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return false;
    // Read-only store or foreign owner: cannot claim, but the blob is there.
    return stat(path).then(() => true, () => false);
  }
}

async function hashFile(path: string, hash: Hash): Promise<void> {
  const rs = createReadStream(path);
  for await (const chunk of rs) hash.update(chunk as Buffer);
}

/**
 * Opens the ingest of `expected`, waiting while another writer (any process) holds it.
 * Always takes the per-digest lock, even for a blob that exists, so that gc (which takes
 * the same lock) cannot delete a blob between a pull deciding it has it and using it.
 */
export async function openIngest(p: LayoutPaths, expected: { digest: Digest; size: number }, opts: IngestOptions = {}): Promise<IngestWriter> {
  const blobPath = p.blob(expected.digest);
  const lock = await acquireLock(p.ingestLock(expected.digest), { signal: opts.signal, timeoutMs: opts.lockTimeoutMs });
  try {
    if (await claimIfCommitted(blobPath)) {
      await lock.release();
      return committedWriter(expected.size);
    }
    return await IngestWriterImpl.open(p, expected, lock);
  } catch (e) {
    await lock.release();
    throw fromSystemError(e);
  }
}

class IngestWriterImpl implements IngestWriter {
  readonly committed = false;
  readonly stream: Writable;
  private written: number;
  private done = false;

  private constructor(
    private readonly p: LayoutPaths,
    private readonly expected: { digest: Digest; size: number },
    private readonly lock: Lock,
    private readonly fh: FileHandle,
    private readonly hash: Hash,
    readonly offset: number,
  ) {
    this.written = offset;
    // Network chunks are small (16-64 KiB), and one write call each cost ~0.2 s of CPU for
    // the Debian base layer's 51 MB. Chunks that arrive while a write is in flight are
    // written together by one writev (writev below). A write's callback still means "on
    // disk" (page cache): a killed process leaves every acknowledged byte in the partial.
    this.stream = new Writable({
      highWaterMark: 1 << 20,
      write: (chunk: Buffer, _enc, cb) => {
        this.hash.update(chunk);
        this.written += chunk.length;
        this.writeAll([chunk], chunk.length).then(() => cb(), (e: unknown) => cb(fromSystemError(e)));
      },
      writev: (chunks, cb) => {
        const bufs = chunks.map((c) => c.chunk as Buffer);
        let len = 0;
        for (const b of bufs) {
          this.hash.update(b);
          len += b.length;
        }
        this.written += len;
        this.writeAll(bufs, len).then(() => cb(), (e: unknown) => cb(fromSystemError(e)));
      },
    });
  }


  private async writeAll(bufs: Buffer[], len: number): Promise<void> {
    while (len > 0) {
      const { bytesWritten } = await this.fh.writev(bufs);
      if (bytesWritten === len) return;
      // a short write (a full disk reports ENOSPC on the next call): write the rest
      const rest = Buffer.concat(bufs, len).subarray(bytesWritten);
      bufs = [rest];
      len = rest.length;
    }
  }

  static async open(p: LayoutPaths, expected: { digest: Digest; size: number }, lock: Lock): Promise<IngestWriterImpl> {
    const partial = p.partial(expected.digest);
    const hash = newHasher(digestAlgorithm(expected.digest));
    let offset = 0;
    try {
      const st = await stat(partial);
      offset = st.size;
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) throw e;
    }
    if (offset > expected.size) {
      // Longer than the blob can be: garbage, start over.
      await unlink(partial);
      offset = 0;
    }
    if (offset > 0) await hashFile(partial, hash);
    const fh = await open(partial, 'a', BLOB_MODE);
    return new IngestWriterImpl(p, expected, lock, fh, hash, offset);
  }

  private async finishStream(): Promise<void> {
    if (!this.stream.writableFinished) {
      if (!this.stream.writableEnded) this.stream.end();
      await finished(this.stream);
    }
  }

  async commit(): Promise<void> {
    if (this.done) throw new BerthError('FAILED_PRECONDITION', `ingest ${this.expected.digest}: already committed or aborted`);
    this.done = true;
    const partial = this.p.partial(this.expected.digest);
    try {
      await this.finishStream();
      const actual = `${digestAlgorithm(this.expected.digest)}:${this.hash.digest('hex')}` as Digest;
      if (actual !== this.expected.digest || this.written !== this.expected.size) {
        await this.fh.close().catch(() => {});
        await unlink(partial).catch(() => {});
        throw new BerthError(
          'DIGEST_MISMATCH',
          `content ${this.expected.digest}: got ${actual} (${this.written} bytes, expected ${this.expected.size})`,
          { details: { expected: this.expected.digest, actual, expectedSize: this.expected.size, actualSize: this.written } },
        );
      }
      await this.fh.sync();
      await this.fh.close();
      await chmod(partial, BLOB_MODE);
      const blobPath = this.p.blob(this.expected.digest);
      await rename(partial, blobPath);
      await fsyncDir(dirname(blobPath));
    } catch (e) {
      await this.fh.close().catch(() => {});
      throw fromSystemError(e);
    } finally {
      await this.lock.release();
    }
  }

  async abort(keepPartial = false): Promise<void> {
    if (this.done) return;
    this.done = true;
    try {
      if (keepPartial) {
        await this.finishStream().catch(() => {});
        await this.fh.sync().catch(() => {});
      } else {
        this.stream.destroy();
      }
      await this.fh.close().catch(() => {});
      if (!keepPartial) await unlink(this.p.partial(this.expected.digest)).catch(() => {});
    } finally {
      await this.lock.release();
    }
  }
}
