/**
 * @module snapshot/dir-snapshotter
 * The 'dir' format: a layer extracted straight onto the snapshot filesystem (ext4); the
 * directory is the overlay lowerdir. Simple, no tools beyond tar, but every file costs an
 * on-disk inode creation at unpack time (see unpack.ts for the numbers).
 *
 * The work area is work/<hex>.<rand>/ on the same filesystem; commit writes meta.json and
 * renames it to dir/<hex> (atomic). Not fsynced file by file (that would double the cost);
 * after a power cut `check()` finds a snapshot whose meta is missing, and fsck rebuilds it.
 */
import { mkdir, mkdtemp, rename, readdir, stat, rm, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex, parseDigest, type Digest } from '../base/digest.ts';
import { fromSystemError } from '../base/errors.ts';
import { isErrno } from '../base/fs.ts';
import type { SnapshotLayout } from './layout.ts';
import type { Readable } from 'node:stream';
import type { ActiveSnapshot, CheckResult, ExtractPolicy, IngestResult, SnapshotInfo, SnapshotMeta, Snapshotter } from './types.ts';

interface DirActive extends ActiveSnapshot {
  readonly workDir: string;
}

export class DirSnapshotter implements Snapshotter {
  readonly format = 'dir' as const;
  private readonly layout: SnapshotLayout;

  constructor(layout: SnapshotLayout) {
    this.layout = layout;
  }

  async prepare(chainId: Digest): Promise<ActiveSnapshot> {
    try {
      await mkdir(this.layout.work(), { recursive: true, mode: 0o700 });
      const workDir = await mkdtemp(join(this.layout.work(), `${digestHex(chainId)}.`));
      const dir = join(workDir, 'fs');
      await mkdir(dir, { mode: 0o755 });
      return { chainId, format: 'dir', dir, workDir } as DirActive;
    } catch (e) {
      throw fromSystemError(e);
    }
  }

  async ingest(active: ActiveSnapshot, tar: Readable, policy: ExtractPolicy): Promise<IngestResult> {
    // loaded on first use: tar-stream and GNU tar's driver are not needed by EROFS pulls
    const [{ extractLayerTar }, { applyWhiteouts }] = await Promise.all([import('./extract.ts'), import('./whiteout.ts')]);
    const result = await extractLayerTar(tar, active.dir, policy);
    await applyWhiteouts(active.dir, result, policy.xattrPrefix);
    return { entries: result.entries, tarBytes: result.tarBytes };
  }

  async commit(active: ActiveSnapshot, meta: SnapshotMeta): Promise<void> {
    const { workDir } = active as DirActive;
    try {
      await writeFile(join(workDir, 'meta.json'), JSON.stringify(meta) + '\n');
      await mkdir(this.layout.formatDir('dir'), { recursive: true, mode: 0o700 });
      await rename(workDir, this.layout.dirSnapshot(active.chainId));
    } catch (e) {
      // ENOTEMPTY/EEXIST: someone committed it meanwhile (locks make this rare); theirs wins
      if (isErrno(e, 'ENOTEMPTY') || isErrno(e, 'EEXIST')) return this.abort(active);
      throw fromSystemError(e);
    }
  }

  async abort(active: ActiveSnapshot): Promise<void> {
    await rm((active as DirActive).workDir, { recursive: true, force: true });
  }

  async mounts(chainId: Digest): Promise<string> {
    return this.layout.dirLower(chainId);
  }

  async release(): Promise<void> {}

  async has(chainId: Digest): Promise<boolean> {
    return stat(join(this.layout.dirSnapshot(chainId), 'meta.json')).then(() => true, () => false);
  }

  async list(): Promise<SnapshotInfo[]> {
    const names = await readdir(this.layout.formatDir('dir')).catch(() => [] as string[]);
    const out: SnapshotInfo[] = [];
    for (const n of names) {
      if (!/^[0-9a-f]{64}$/.test(n)) continue;
      const chainId = parseDigest(`sha256:${n}`);
      const path = this.layout.dirSnapshot(chainId);
      const meta = await readFile(join(path, 'meta.json'), 'utf8').then((s) => JSON.parse(s) as SnapshotMeta, () => undefined);
      out.push({ chainId, format: 'dir', path, size: meta?.bytes ?? 0 });
    }
    return out;
  }

  async remove(chainId: Digest): Promise<void> {
    const path = this.layout.dirSnapshot(chainId);
    // rename first so a half-removed tree is never mistaken for a snapshot
    const trash = join(this.layout.work(), `${digestHex(chainId)}.rm-${process.pid}-${Date.now()}`);
    try {
      await mkdir(this.layout.work(), { recursive: true, mode: 0o700 });
      await rename(path, trash);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return;
      throw fromSystemError(e);
    }
    await rm(trash, { recursive: true, force: true });
  }

  async check(chainId: Digest): Promise<CheckResult> {
    const path = this.layout.dirSnapshot(chainId);
    const [d, m, f] = await Promise.all([stat(path), stat(join(path, 'meta.json')), stat(join(path, 'fs'))].map((p) => p.then(() => true, () => false)));
    if (!d) return { chainId, ok: false, problem: 'missing' };
    if (!m || !f) return { chainId, ok: false, problem: 'incomplete', detail: `${path}: ${m ? 'fs/' : 'meta.json'} missing` };
    return { chainId, ok: true };
  }
}
