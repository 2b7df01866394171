/**
 * @module content/lease
 * Leases (containerd's word): what an operation in flight holds on to, so that a
 * concurrent `berth image prune` does not delete it. A pull commits its layers and
 * snapshots long before it names the image in index.json, and it may find a layer that
 * "already exists" but that no image references any more: without a lease, a prune in
 * between deletes exactly what the pull is relying on.
 *
 *   <root>/leases/<pid>-<rand>.json   {pid, start, host, created, digests[], chainIds[]}
 *
 * Protocol (the prune lock, locks/prune.lock, makes it race-free):
 *  - a holder adds digests to its lease (rewriting the file atomically) *under* the prune
 *    lock, and only afterwards checks whether the blob or snapshot exists;
 *  - prune holds the prune lock for its whole run, reads every live lease first and
 *    treats its digests as roots and its chain IDs as in use.
 * So either the lease update came first (prune sees it and keeps the blob) or prune ran
 * first (the blob is gone and the pull, checking after its update, fetches it again).
 * A lease whose owner died (pid gone or recycled: base/lock's owner check) is ignored and
 * removed by prune; the owner removes it at the end, success or failure.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { isDigest, type Digest } from '../base/digest.ts';
import { fromSystemError } from '../base/errors.ts';
import { ensureDir, isErrno, tempPathFor } from '../base/fs.ts';
import { ownerIsDead, processStartTime, withLock } from '../base/lock.ts';

export interface LeaseRecord {
  pid: number;
  start: string | null;
  host: string;
  created: string;
  /** What the operation is (for humans: "pull docker.io/library/busybox:latest"). */
  label: string;
  digests: Digest[];
  chainIds: Digest[];
}

/** A lease held by this process. */
export interface Lease {
  readonly path: string;
  /** Adds blobs (digests) and snapshots (chain IDs); returns once prune cannot miss them. */
  add(items: { digests?: readonly Digest[]; chainIds?: readonly Digest[] }): Promise<void>;
  /** Removes the lease. Idempotent. */
  release(): Promise<void>;
}

export interface HeldItems {
  digests: Set<Digest>;
  chainIds: Set<Digest>;
}

export class Leases {
  readonly dir: string;
  readonly pruneLock: string;

  constructor(root: string) {
    this.dir = join(root, 'leases');
    this.pruneLock = join(root, 'locks', 'prune.lock');
  }

  /** Creates a lease for this process; its file is written by the first add(). */
  async create(label: string): Promise<Lease> {
    await ensureDir(this.dir, 0o700);
    const path = join(this.dir, `${process.pid}-${randomBytes(6).toString('hex')}.json`);
    const rec: LeaseRecord = {
      pid: process.pid, start: processStartTime('self'), host: hostname(), created: new Date().toISOString(), label, digests: [], chainIds: [],
    };
    const digests = new Set<Digest>();
    const chainIds = new Set<Digest>();
    let released = false;
    // Atomic (rename) but not fsynced: a lease only matters to processes running now; after
    // a crash its owner is dead and the lease is ignored anyway.
    const write = async () => {
      const tmp = tempPathFor(path);
      try {
        await writeFile(tmp, `${JSON.stringify({ ...rec, digests: [...digests], chainIds: [...chainIds] })}\n`, { mode: 0o600 });
        await rename(tmp, path);
      } catch (e) {
        await unlink(tmp).catch(() => {});
        throw fromSystemError(e);
      }
    };
    return {
      path,
      add: async (items) => {
        const before = digests.size + chainIds.size;
        for (const d of items.digests ?? []) digests.add(d);
        for (const c of items.chainIds ?? []) chainIds.add(c);
        if (released || digests.size + chainIds.size === before) return;
        await withLock(this.pruneLock, write);
      },
      release: async () => {
        if (released) return;
        released = true;
        await unlink(path).catch((e: unknown) => {
          if (!isErrno(e, 'ENOENT')) throw fromSystemError(e);
        });
      },
    };
  }

  /** Runs fn with the prune lock held (no lease can change meanwhile). */
  withPruneLock<T>(fn: () => Promise<T>): Promise<T> {
    return withLock(this.pruneLock, fn);
  }

  /**
   * What live leases hold. Call with the prune lock held. Leases of dead owners are
   * removed; unreadable ones (being written by a crashed writer: writes are atomic, so
   * only foreign junk) are skipped.
   */
  async held(): Promise<HeldItems> {
    const out: HeldItems = { digests: new Set(), chainIds: new Set() };
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return out;
      throw fromSystemError(e);
    }
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      const path = join(this.dir, n);
      let rec: Partial<LeaseRecord>;
      try {
        rec = JSON.parse(await readFile(path, 'utf8')) as Partial<LeaseRecord>;
      } catch {
        continue;
      }
      if (typeof rec.pid !== 'number') continue;
      if (ownerIsDead({ pid: rec.pid, start: rec.start ?? null, host: rec.host })) {
        await unlink(path).catch(() => {});
        continue;
      }
      for (const d of Array.isArray(rec.digests) ? rec.digests : []) if (typeof d === 'string' && isDigest(d)) out.digests.add(d);
      for (const c of Array.isArray(rec.chainIds) ? rec.chainIds : []) if (typeof c === 'string' && isDigest(c)) out.chainIds.add(c);
    }
    return out;
  }
}
