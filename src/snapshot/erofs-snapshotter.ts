/**
 * @module snapshot/erofs-snapshotter
 * The 'erofs' format: each layer is ONE image file erofs/<hex>.erofs, written straight
 * from the layer's tar stream by the in-process writer (erofs/), with no extraction, no
 * mkfs.erofs and no privilege (owners and device numbers are data in the image). To use
 * it, the image is mounted read-only at mnt/<hex> and that directory is the lowerdir.
 *
 * Work area: work/<hex>.<rand>/ on the store's filesystem (so the commit is a rename);
 * the image grows there as the layer streams in. Commit: meta json, then rename the image
 * into erofs/<hex>.erofs (the commit point).
 *
 * Durability (what is fsynced): nothing here. A snapshot is derived data — the blob it
 * came from is in the content store, which is the durable state — so paying an fsync per
 * layer (0.1-0.3 s for the Debian base layer on this VM) would buy nothing that
 * `berth image fsck --repair` cannot rebuild. After a crash a committed image may be
 * torn: the superblock is written last, so a torn image usually has no magic; in any case
 * fsck.erofs, which `check()` runs, reads every block and reports it, and --repair
 * re-unpacks the layer from its blob.
 */
import { mkdir, mkdtemp, rename, readdir, stat, rm, writeFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { digestHex, parseDigest, type Digest } from '../base/digest.ts';
import { fromSystemError } from '../base/errors.ts';
import { isErrno } from '../base/fs.ts';
import { checkErofs } from './erofs-image.ts';
import { mountErofs, unmountErofs } from './erofs-mount.ts';
import { writeLayerImage } from './erofs/index.ts';
import { nativeWriter, writeLayerImageNative } from './erofs/native.ts';
import { inflateInto } from './inflate.ts';
import { ingestInWorker, useWorker } from './unpack-worker.ts';
import type { Compression } from '../oci/media-types.ts';
import type { SnapshotLayout } from './layout.ts';
import type { ActiveSnapshot, CheckResult, ExtractPolicy, IngestResult, SnapshotInfo, SnapshotMeta, Snapshotter } from './types.ts';

const IMAGE_NAME = 'layer.erofs';

export class ErofsSnapshotter implements Snapshotter {
  readonly format = 'erofs' as const;
  private readonly layout: SnapshotLayout;

  constructor(layout: SnapshotLayout) {
    this.layout = layout;
  }

  async prepare(chainId: Digest): Promise<ActiveSnapshot> {
    try {
      await mkdir(this.layout.work(), { recursive: true, mode: 0o700 });
      const dir = await mkdtemp(join(this.layout.work(), `${digestHex(chainId)}.`));
      return { chainId, format: 'erofs', dir };
    } catch (e) {
      throw fromSystemError(e);
    }
  }

  async ingest(active: ActiveSnapshot, tar: Readable, policy: ExtractPolicy): Promise<IngestResult> {
    const r = await writeLayerImage(tar, join(active.dir, IMAGE_NAME), policy);
    return { entries: r.entries, tarBytes: r.tarBytes };
  }

  /**
   * The native writer (berth-helper erofs-write, erofs/native.ts) when the helper is built;
   * else in process: big layers in a worker thread (unpack-worker.ts), small ones here.
   */
  async ingestCompressed(
    active: ActiveSnapshot,
    src: { compressed: Readable; compression: Compression; what: string; size: number; onProgress?: (tarBytes: number) => void },
    policy: ExtractPolicy,
  ): Promise<{ result: IngestResult; diffId: Digest }> {
    const helper = nativeWriter();
    if (helper) {
      const r = await writeLayerImageNative(helper, src.compressed, { imagePath: join(active.dir, IMAGE_NAME), policy, compression: src.compression, what: src.what, size: src.size, onProgress: src.onProgress });
      return { result: { entries: r.entries, tarBytes: r.tarBytes }, diffId: r.diffId };
    }
    if (useWorker(src.size)) {
      return ingestInWorker(src.compressed, { imagePath: join(active.dir, IMAGE_NAME), policy, compression: src.compression, what: src.what, size: src.size }, src.onProgress);
    }
    const r = await inflateInto(src.compressed, src.compression, src.what, (tar) => this.ingest(active, tar, policy), src.onProgress, src.size);
    return { result: r.result, diffId: r.diffId };
  }

  async commit(active: ActiveSnapshot, meta: SnapshotMeta): Promise<void> {
    try {
      await mkdir(this.layout.formatDir('erofs'), { recursive: true, mode: 0o700 });
      await writeFile(this.layout.erofsMeta(active.chainId), JSON.stringify(meta) + '\n');
      await rename(join(active.dir, IMAGE_NAME), this.layout.erofsImage(active.chainId));
    } catch (e) {
      throw fromSystemError(e);
    } finally {
      await this.abort(active);
    }
  }

  async abort(active: ActiveSnapshot): Promise<void> {
    await rm(active.dir, { recursive: true, force: true });
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
