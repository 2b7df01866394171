/**
 * @module content/gc
 * Garbage collection of a local store. The rule:
 *
 *  1. The whole run holds locks/index.lock, so no ref changes while we decide.
 *  2. Roots = the `roots` argument ∪ every entry of index.json (read under the lock).
 *     Everything reachable from a root (index → manifests → config + layers, see
 *     reachable.ts) is kept. If a reachable index/manifest cannot be parsed, gc refuses
 *     (CORRUPT): we cannot know what it keeps alive; run fsck.
 *  3. An unreachable blob is deleted only if (a) its ingest lock can be taken (no writer of
 *     that digest is active) and (b) it was committed more than `minAgeMs` ago (ctime,
 *     which rename sets). (b) protects a pull in flight: it commits layers first and sets
 *     its ref last, so its early blobs are briefly unreferenced. A pull must set its ref
 *     within minAgeMs (default 15 min) of its first commit; pass 0 when nothing can be
 *     pulling (tests, an exclusive maintenance command). ingest() of an existing blob
     refreshes its ctime under the ingest lock, so reusing an old blob claims it too;
     callers must therefore claim blobs with ingest()/putBlob(), not just has().
 *  4. An ingest partial is deleted when its ingest lock is free and it was last written
 *     more than `partialMaxAgeMs` ago (default 24 h); younger ones are kept for resume.
 *  4b. Blobs in `keep` (held by live leases of pulls in flight) are never deleted.
 *  5. Leftover atomic-write temp files (`.*.tmp`) in blobs/ and the root older than 1 h go.
 */
import { readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isDigest, type Digest } from '../base/digest.ts';
import { BerthError, fromSystemError } from '../base/errors.ts';
import { isErrno } from '../base/fs.ts';
import { tryAcquireLock } from '../base/lock.ts';
import type { Descriptor } from '../oci/types.ts';
import type { LocalStore } from './local-store.ts';
import { reachableFrom } from './reachable.ts';

export interface GcOptions {
  /** Keep unreachable blobs committed less than this long ago (ms). Default 15 min. */
  minAgeMs?: number;
  /** Keep unlocked ingest partials written less than this long ago (ms). Default 24 h. */
  partialMaxAgeMs?: number;
  /** Report what would go, delete nothing. */
  dryRun?: boolean;
  /** Blobs to keep whatever their reachability (what live leases hold, content/lease.ts). */
  keep?: ReadonlySet<Digest>;
}

export interface GcResult {
  removed: Digest[];
  freedBytes: number;
  /** Partials (ingest/) and temp files removed. */
  removedFiles: string[];
  /** Unreachable blobs kept because a writer holds their lock or they are too young. */
  skipped: Digest[];
}

const TEMP_MAX_AGE_MS = 3600_000;

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return [];
    throw fromSystemError(e);
  }
}

async function removeFile(path: string): Promise<number> {
  try {
    const st = await stat(path);
    await unlink(path);
    return st.size;
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return 0;
    throw fromSystemError(e);
  }
}

/** Deletes blobs not reachable from roots ∪ index.json, and stale partials (rule above). */
export async function gcBlobs(store: LocalStore, roots: readonly Descriptor[], opts: GcOptions = {}): Promise<GcResult> {
  const minAgeMs = opts.minAgeMs ?? 15 * 60_000;
  const partialMaxAgeMs = opts.partialMaxAgeMs ?? 24 * 3600_000;
  const result: GcResult = { removed: [], freedBytes: 0, removedFiles: [], skipped: [] };
  const now = Date.now();

  await store.withIndexLock(async () => {
    const index = await store.readIndex();
    const { reachable, findings } = await reachableFrom(store, [...roots, ...index.manifests]);
    const broken = findings.filter((f) => f.kind === 'bad-json' || f.kind === 'unreadable');
    if (broken.length > 0) {
      throw new BerthError('CORRUPT', `gc refused: ${broken.length} reachable object(s) unreadable, run fsck (${broken[0]!.message})`, {
        details: { findings: broken },
      });
    }

    for await (const b of store.walk()) {
      if (reachable.has(b.digest) || opts.keep?.has(b.digest)) continue;
      const path = store.paths.blob(b.digest);
      let ctimeMs: number;
      try {
        ctimeMs = (await stat(path)).ctimeMs;
      } catch {
        continue;
      }
      if (now - ctimeMs < minAgeMs) {
        result.skipped.push(b.digest);
        continue;
      }
      const lock = await tryAcquireLock(store.paths.ingestLock(b.digest));
      if (!lock) {
        result.skipped.push(b.digest);
        continue;
      }
      try {
        // Re-check under the lock: ingest() refreshes ctime under this same lock when a
        // pull reuses the blob.
        const again = await stat(path).catch(() => undefined);
        if (!again || now - again.ctimeMs < minAgeMs) {
          if (again) result.skipped.push(b.digest);
          continue;
        }
        if (!opts.dryRun) result.freedBytes += await removeFile(path);
        else result.freedBytes += b.size;
        result.removed.push(b.digest);
      } finally {
        await lock.release();
      }
    }

    for (const name of await listDir(store.paths.ingestDir)) {
      const m = /^([a-z0-9]+)-([0-9a-f]+)\.partial$/.exec(name);
      const path = join(store.paths.ingestDir, name);
      const digest = m ? `${m[1]}:${m[2]}` : '';
      if (!isDigest(digest)) continue;
      const st = await stat(path).catch(() => undefined);
      if (!st || now - st.mtimeMs < partialMaxAgeMs) continue;
      const lock = await tryAcquireLock(store.paths.ingestLock(digest));
      if (!lock) continue;
      try {
        if (!opts.dryRun) result.freedBytes += await removeFile(path);
        result.removedFiles.push(path);
      } finally {
        await lock.release();
      }
    }

    const tempDirs = [store.root, ...(await listDir(store.paths.blobsDir)).map((a) => store.paths.algDir(a))];
    for (const dir of tempDirs) {
      for (const name of await listDir(dir)) {
        if (!name.startsWith('.') || !name.endsWith('.tmp')) continue;
        const path = join(dir, name);
        const st = await stat(path).catch(() => undefined);
        if (!st || now - st.mtimeMs < TEMP_MAX_AGE_MS) continue;
        if (!opts.dryRun) result.freedBytes += await removeFile(path);
        result.removedFiles.push(path);
      }
    }
  });
  return result;
}
