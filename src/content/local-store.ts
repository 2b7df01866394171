/**
 * @module content/local-store
 * ContentStore over a standard OCI image layout on the local filesystem (see layout.ts for
 * the directory map). Any OCI tool (skopeo `oci:`, umoci) can read the root directly;
 * berth adds only ingest/ and locks/, which such tools ignore.
 *
 * Reads are plain file reads of committed blobs; writes go through ingest.ts (verify, then
 * rename); refs through refs.ts (locked, atomic index.json). All filesystem errors leave
 * here as BerthError (ENOENT → NOT_FOUND with the digest, ENOSPC → NO_SPACE).
 */
import { open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { isDigest, parseDigest, sha256, digestAlgorithm, newHasher, type Digest } from '../base/digest.ts';
import { BerthError, fromSystemError } from '../base/errors.ts';
import { isErrno } from '../base/fs.ts';
import type { Descriptor } from '../oci/types.ts';
import { openIngest } from './ingest.ts';
import { initLayoutDirs, LayoutPaths } from './layout.ts';
import { prepareStoreRoot } from './root-check.ts';
import { IndexRefs, type IndexDoc } from './refs.ts';
import type { BlobInfo, ContentStore, IngestOptions, IngestWriter, RefEntry } from './types.ts';

const READ_CHUNK = 1 << 20;

function notFound(d: Digest, cause: unknown): BerthError {
  return new BerthError('NOT_FOUND', `content ${d}: not found`, { cause, details: { digest: d } });
}

function sysErr(d: Digest, e: unknown): BerthError {
  return isErrno(e, 'ENOENT') ? notFound(d, e) : fromSystemError(e);
}

/** The local store; also exposes raw index access for fsck/gc in this module. */
export class LocalStore implements ContentStore {
  readonly paths: LayoutPaths;
  readonly refs: IndexRefs;

  constructor(readonly root: string) {
    this.paths = new LayoutPaths(root);
    this.refs = new IndexRefs(this.paths);
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.info(digest)) !== undefined;
  }

  async info(digest: Digest): Promise<BlobInfo | undefined> {
    parseDigest(digest);
    try {
      const st = await stat(this.paths.blob(digest));
      return { digest, size: st.size };
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return undefined;
      throw fromSystemError(e);
    }
  }

  blobPath(digest: Digest): string {
    return this.paths.blob(parseDigest(digest));
  }

  async readBlob(digest: Digest): Promise<Buffer> {
    try {
      return await readFile(this.blobPath(digest));
    } catch (e) {
      throw sysErr(digest, e);
    }
  }

  async readJSON<T>(digest: Digest): Promise<T> {
    const buf = await this.readBlob(digest);
    try {
      return JSON.parse(buf.toString('utf8')) as T;
    } catch (e) {
      throw new BerthError('CORRUPT', `content ${digest}: not valid JSON`, { cause: e, details: { digest } });
    }
  }

  openRead(digest: Digest, opts: { start?: number } = {}): Readable {
    const path = this.blobPath(digest);
    async function* chunks(): AsyncGenerator<Buffer> {
      let fh;
      try {
        fh = await open(path, 'r');
      } catch (e) {
        throw sysErr(digest, e);
      }
      try {
        let pos = opts.start ?? 0;
        for (;;) {
          const buf = Buffer.allocUnsafe(READ_CHUNK);
          const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, pos);
          if (bytesRead === 0) return;
          pos += bytesRead;
          yield buf.subarray(0, bytesRead);
        }
      } finally {
        await fh.close();
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  ingest(expected: Pick<Descriptor, 'digest' | 'size'>, opts?: IngestOptions): Promise<IngestWriter> {
    parseDigest(expected.digest);
    if (!Number.isSafeInteger(expected.size) || expected.size < 0) {
      throw new BerthError('INVALID_ARGUMENT', `ingest ${expected.digest}: bad size ${expected.size}`);
    }
    return openIngest(this.paths, { digest: expected.digest, size: expected.size }, opts);
  }

  async putBlob(data: Buffer, expected?: Pick<Descriptor, 'digest' | 'size'>): Promise<Digest> {
    const alg = expected ? digestAlgorithm(parseDigest(expected.digest)) : 'sha256';
    const actual = alg === 'sha256' ? sha256(data) : (`${alg}:${newHasher(alg).update(data).digest('hex')}` as Digest);
    if (expected && (expected.digest !== actual || expected.size !== data.length)) {
      throw new BerthError('DIGEST_MISMATCH', `content ${expected.digest}: got ${actual} (${data.length} bytes, expected ${expected.size})`, {
        details: { expected: expected.digest, actual, expectedSize: expected.size, actualSize: data.length },
      });
    }
    const w = await this.ingest({ digest: actual, size: data.length });
    if (w.committed) return actual;
    if (w.offset > 0) {
      // A stale partial of the same digest: whatever it holds, our bytes are complete.
      await w.abort(false);
      return this.putBlob(data, expected);
    }
    w.stream.end(data);
    await w.commit();
    return actual;
  }

  async *walk(): AsyncIterable<BlobInfo> {
    let algs: string[];
    try {
      algs = await readdir(this.paths.blobsDir);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return;
      throw fromSystemError(e);
    }
    for (const alg of algs.sort()) {
      let names: string[];
      try {
        names = await readdir(this.paths.algDir(alg));
      } catch (e) {
        if (isErrno(e, 'ENOTDIR') || isErrno(e, 'ENOENT')) continue;
        throw fromSystemError(e);
      }
      for (const name of names.sort()) {
        const digest = `${alg}:${name}`;
        if (!isDigest(digest)) continue; // temp files and foreign junk
        const info = await this.info(digest);
        if (info) yield info;
      }
    }
  }

  async delete(digest: Digest): Promise<void> {
    try {
      await unlink(this.blobPath(digest));
    } catch (e) {
      throw sysErr(digest, e);
    }
  }

  listRefs(): Promise<RefEntry[]> {
    return this.refs.listRefs();
  }
  getRef(name: string): Promise<Descriptor | undefined> {
    return this.refs.getRef(name);
  }
  setRef(name: string, descriptor: Descriptor): Promise<void> {
    return this.refs.setRef(name, descriptor);
  }
  deleteRef(name: string): Promise<boolean> {
    return this.refs.deleteRef(name);
  }
  withIndexLock<T>(fn: () => Promise<T>): Promise<T> {
    return this.refs.withIndexLock(fn);
  }
  /** Every index.json entry, named or not (for gc roots and fsck). */
  readIndex(): Promise<IndexDoc> {
    return this.refs.readIndex();
  }
}

/** Opens (creating if needed) the OCI layout at root as a content store. */
/** Opens (creating if needed) the store at root; refuses a root others could write to (root-check.ts). */
export async function openStore(root: string): Promise<LocalStore> {
  await prepareStoreRoot(root);
  const store = new LocalStore(root);
  await initLayoutDirs(store.paths);
  await store.refs.ensureIndex();
  return store;
}
