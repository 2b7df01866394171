/**
 * @module snapshot/erofs-snapshotter
 * The 'erofs' format: the layer is extracted onto a private tmpfs (inode creation costs
 * microseconds there instead of an ext4 journal's), whiteouts are converted there, then
 * `mkfs.erofs` packs the tree into ONE image file erofs/<hex>.erofs and the tmpfs goes
 * away. The disk sees one sequential file write per layer, whatever its file count. To
 * use it, the image is mounted read-only at mnt/<hex> and that directory is the lowerdir.
 *
 * Scratch: a tmpfs mounted on work/<hex>.<rand>/ (size=50% of RAM: a bound, not a
 * reservation). Rootless or when mounting fails: /dev/shm; for layers whose compressed
 * size suggests more than a quarter of RAM: the disk (slow but bounded by disk space).
 * Commit: meta json, mkfs into a temp name, rename into erofs/<hex>.erofs (the commit).
 */
import { mkdir, mkdtemp, rename, readdir, stat, rm, writeFile, rmdir } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { digestHex, parseDigest, type Digest } from '../base/digest.ts';
import { fromSystemError } from '../base/errors.ts';
import { run } from '../base/exec.ts';
import { isErrno } from '../base/fs.ts';
import { checkErofs, mkfsErofs, type MkfsOptions } from './erofs-image.ts';
import { mountErofs, unmountErofs } from './erofs-mount.ts';
import type { SnapshotLayout } from './layout.ts';
import { mountAt } from './mountinfo.ts';
import type { ActiveSnapshot, CheckResult, SnapshotInfo, SnapshotMeta, Snapshotter } from './types.ts';

interface ErofsActive extends ActiveSnapshot {
  readonly scratch: string;
  readonly tmpfs: boolean;
}

/** Expected expansion of a compressed layer, for choosing the scratch place. */
const EXPANSION = 4;

export class ErofsSnapshotter implements Snapshotter {
  readonly format = 'erofs' as const;
  private readonly layout: SnapshotLayout;
  private readonly mkfs: MkfsOptions;

  constructor(layout: SnapshotLayout, mkfs: MkfsOptions = {}) {
    this.layout = layout;
    this.mkfs = mkfs;
  }

  async prepare(chainId: Digest, opts: { sizeHint?: number } = {}): Promise<ActiveSnapshot> {
    const hex = digestHex(chainId);
    try {
      await mkdir(this.layout.work(), { recursive: true, mode: 0o700 });
      const big = (opts.sizeHint ?? 0) * EXPANSION > totalmem() / 4;
      let scratch = await mkdtemp(join(this.layout.work(), `${hex}.`));
      let tmpfs = false;
      if (!big) {
        const r = await run(['mount', '-t', 'tmpfs', '-o', 'size=50%,mode=0700,nosuid', 'berth-scratch', scratch], { reject: false }).catch(() => undefined);
        tmpfs = r?.exitCode === 0;
        if (!tmpfs && (await stat('/dev/shm').then((s) => s.isDirectory(), () => false))) {
          await rmdir(scratch);
          scratch = await mkdtemp(join('/dev/shm', `berth-${hex.slice(0, 12)}.`));
        }
      }
      const dir = join(scratch, 'fs');
      await mkdir(dir, { mode: 0o755 });
      return { chainId, format: 'erofs', dir, scratch, tmpfs } as ErofsActive;
    } catch (e) {
      throw fromSystemError(e);
    }
  }

  async commit(active: ActiveSnapshot, meta: SnapshotMeta): Promise<void> {
    const image = this.layout.erofsImage(active.chainId);
    const tmp = `${image}.${process.pid}.tmp`;
    try {
      await mkdir(this.layout.formatDir('erofs'), { recursive: true, mode: 0o700 });
      await rm(tmp, { force: true });
      await mkfsErofs(tmp, active.dir, this.mkfs);
      await writeFile(this.layout.erofsMeta(active.chainId), JSON.stringify(meta) + '\n');
      await rename(tmp, image);
    } catch (e) {
      await rm(tmp, { force: true });
      throw fromSystemError(e);
    } finally {
      await this.abort(active);
    }
  }

  async abort(active: ActiveSnapshot): Promise<void> {
    const { scratch, tmpfs } = active as ErofsActive;
    // unmounting the tmpfs frees everything at once; rm would walk every file
    if (tmpfs && (await mountAt(scratch))?.fsType === 'tmpfs') {
      await run(['umount', scratch], { reject: false });
    }
    await rm(scratch, { recursive: true, force: true });
  }

  async mounts(chainId: Digest): Promise<string> {
    const mp = this.layout.mountPoint(chainId);
    await mountErofs(this.layout.erofsImage(chainId), mp);
    return mp;
  }

  async release(chainId: Digest): Promise<void> {
    const mp = this.layout.mountPoint(chainId);
    await unmountErofs(mp);
    await rmdir(mp).catch(() => {});
  }

  async has(chainId: Digest): Promise<boolean> {
    return stat(this.layout.erofsImage(chainId)).then((s) => s.isFile(), () => false);
  }

  async list(): Promise<SnapshotInfo[]> {
    const names = await readdir(this.layout.formatDir('erofs')).catch(() => [] as string[]);
    const out: SnapshotInfo[] = [];
    for (const n of names) {
      const m = /^([0-9a-f]{64})\.erofs$/.exec(n);
      if (!m) continue;
      const chainId = parseDigest(`sha256:${m[1]}`);
      const path = this.layout.erofsImage(chainId);
      const st = await stat(path).catch(() => undefined);
      if (st) out.push({ chainId, format: 'erofs', path, size: st.size });
    }
    return out;
  }

  async remove(chainId: Digest): Promise<void> {
    await this.release(chainId);
    for (const p of [this.layout.erofsImage(chainId), this.layout.erofsMeta(chainId)]) {
      await rm(p, { force: true }).catch((e: unknown) => {
        if (!isErrno(e, 'ENOENT')) throw fromSystemError(e);
      });
    }
  }

  async check(chainId: Digest): Promise<CheckResult> {
    const image = this.layout.erofsImage(chainId);
    if (!(await this.has(chainId))) return { chainId, ok: false, problem: 'missing' };
    const problem = await checkErofs(image);
    if (problem) return { chainId, ok: false, problem: 'corrupt', detail: `${image}: ${problem}` };
    return { chainId, ok: true };
  }
}
