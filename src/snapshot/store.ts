/**
 * @module snapshot/store
 * The snapshot store: one root (<berthRoot>/snapshots), snapshots keyed by chain ID, in
 * either format. New snapshots use `format` (default 'erofs'; openUnpacker in index.ts
 * falls back to 'dir' without erofs-utils); existing ones are used in whatever format
 * they were made. Implements the puller's LayerUnpacker (has/unpack).
 *
 * Concurrency: unpack takes locks/<hex>.lock (src/base/lock.ts, cross-process), then
 * re-checks `has`, so two pulls sharing a layer unpack it once; the loser drains its
 * stream (the puller's tee must keep flowing so its blob is still saved).
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Digest } from '../base/digest.ts';
import { BerthError } from '../base/errors.ts';
import { withLock } from '../base/lock.ts';
import { run } from '../base/exec.ts';
import type { Descriptor } from '../oci/types.ts';
import { chainId as computeChainId } from '../oci/chain-id.ts';
import { DirSnapshotter } from './dir-snapshotter.ts';
import { ErofsSnapshotter } from './erofs-snapshotter.ts';
import { SnapshotLayout } from './layout.ts';
import { mountAt } from './mountinfo.ts';
import { defaultPolicy, type CheckResult, type ExtractPolicy, type SnapshotFormat, type SnapshotInfo, type SnapshotMeta, type Snapshotter } from './types.ts';
import { unpackLayer } from './unpack.ts';

export interface SnapshotStoreOptions {
  format?: SnapshotFormat;
  policy?: Partial<ExtractPolicy>;
}

export interface UnpackRequest {
  chainId: Digest;
  diffId: Digest;
  descriptor: Descriptor;
  compressed: Readable;
  /** Decompressed bytes ingested so far, now and then (progress display). */
  onProgress?: (tarBytes: number) => void;
}

export class SnapshotStore {
  readonly root: string;
  readonly format: SnapshotFormat;
  readonly layout: SnapshotLayout;
  readonly policy: ExtractPolicy;
  private readonly impls: Record<SnapshotFormat, Snapshotter>;

  constructor(root: string, opts: SnapshotStoreOptions = {}) {
    this.root = root;
    this.layout = new SnapshotLayout(root);
    this.format = opts.format ?? 'erofs';
    // the EROFS writer records device nodes as data: no privilege needed to build them
    this.policy = defaultPolicy({ ...(this.format === 'erofs' ? { allowDevices: true } : {}), ...opts.policy });
    this.impls = { dir: new DirSnapshotter(this.layout), erofs: new ErofsSnapshotter(this.layout) };
  }

  /** chainID(n) = sha256(chainID(n-1) + " " + diffID(n)). */
  static chainId(diffIds: readonly Digest[]): Digest {
    return computeChainId(diffIds);
  }

  snapshotter(format: SnapshotFormat = this.format): Snapshotter {
    return this.impls[format];
  }

  /** The snapshotter holding chainId, if any (the preferred format first). */
  async find(chainId: Digest): Promise<Snapshotter | undefined> {
    for (const f of [this.format, this.format === 'dir' ? 'erofs' : 'dir'] as const) {
      if (await this.impls[f].has(chainId)) return this.impls[f];
    }
    return undefined;
  }

  async has(chainId: Digest): Promise<boolean> {
    return (await this.find(chainId)) !== undefined;
  }

  async list(): Promise<SnapshotInfo[]> {
    return [...(await this.impls.dir.list()), ...(await this.impls.erofs.list())];
  }

  async remove(chainId: Digest): Promise<void> {
    await withLock(this.layout.lock(chainId), async () => {
      await this.impls.dir.remove(chainId);
      await this.impls.erofs.remove(chainId);
    });
  }

  async check(chainId: Digest): Promise<CheckResult> {
    const s = await this.find(chainId);
    if (s) return s.check(chainId);
    // a dir snapshot without meta.json is "incomplete", not missing
    const r = await this.impls.dir.check(chainId);
    return r.problem === 'incomplete' ? r : { chainId, ok: false, problem: 'missing' };
  }

  /** Unpacks a layer unless its snapshot exists (the LayerUnpacker contract). */
  async unpack(req: UnpackRequest): Promise<void> {
    await withLock(this.layout.lock(req.chainId), async () => {
      if (await this.has(req.chainId)) {
        req.compressed.resume();
        return;
      }
      await unpackLayer(this.snapshotter(), req, this.policy);
    });
  }

  /** fsck --repair: replaces whatever is at chainId by a fresh unpack of the blob. */
  async rebuild(chainId: Digest, layer: Omit<UnpackRequest, 'chainId'>): Promise<SnapshotMeta> {
    return withLock(this.layout.lock(chainId), async () => {
      await this.impls.dir.remove(chainId);
      await this.impls.erofs.remove(chainId);
      return unpackLayer(this.snapshotter(), { ...layer, chainId }, this.policy);
    });
  }

  /** A lowerdir for chainId (mounting an EROFS image if needed). */
  async lowerDir(chainId: Digest): Promise<string> {
    const s = await this.find(chainId);
    if (!s) throw new BerthError('NOT_FOUND', `snapshot ${chainId} not found`);
    return s.mounts(chainId);
  }

  /** Removes work areas left by crashed unpacks (no lock holder any more). Call at open. */
  async sweepWork(): Promise<number> {
    const names = await readdir(this.layout.work()).catch(() => [] as string[]);
    let n = 0;
    for (const name of names) {
      const p = join(this.layout.work(), name);
      const lock = join(this.root, 'locks', `${name.slice(0, 64)}.lock`);
      // a work area whose lock is free belongs to a dead unpack (unpacks hold the lock)
      const swept = await withLock(lock, async () => {
        if ((await mountAt(p))?.fsType === 'tmpfs') await run(['umount', p], { reject: false });
        await rm(p, { recursive: true, force: true });
        return true;
      }, { timeoutMs: 1 }).catch(() => false);
      if (swept) n++;
    }
    return n;
  }
}
