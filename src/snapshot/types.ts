/**
 * @module snapshot/types
 * Layer snapshots: each image layer unpacked once, keyed by its chain ID, ready to be an
 * overlayfs lower directory.
 *
 * Glossary (containerd's words, narrowed to what berth needs):
 * - *diffID*: sha256 of a layer's uncompressed tar (image config `rootfs.diff_ids`).
 * - *chainID*: identity of a layer *and everything below it*; chainID(1) = diffID(1),
 *   chainID(n) = sha256(chainID(n-1) + " " + diffID(n)) (OCI image spec). Snapshots are
 *   keyed by it, so images that share a base share its snapshots.
 * - *active* snapshot: a private work area being filled (prepare). Invisible to readers.
 * - *committed* snapshot: finalized, immutable, visible under snapshots/<format>/<hex>.
 *
 * Lifecycle of an unpack (see unpack.ts, which drives this):
 *   const a = await snapshotter.prepare(chainId)    // fresh private work area a.dir
 *   await snapshotter.ingest(a, tarStream, policy)  // extract / write the image there
 *   await snapshotter.commit(a, meta)               // atomic rename; or abort(a)
 *   const lower = await snapshotter.mounts(chainId) // a directory usable as lowerdir
 *
 * Each layer is extracted into its own empty directory, never on top of its parent, so a
 * symlink planted by a lower layer can never be followed while writing an upper layer: the
 * cross-layer symlink attack has nothing to follow. Only the merged overlay (read-only at
 * unpack time) ever combines layers.
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../base/digest.ts';
import type { Compression } from '../oci/media-types.ts';

export type SnapshotFormat = 'dir' | 'erofs';

export const SNAPSHOT_FORMATS: readonly SnapshotFormat[] = ['dir', 'erofs'];

/** A snapshot being filled. `dir` is where the layer's files go (initially empty). */
export interface ActiveSnapshot {
  readonly chainId: Digest;
  readonly format: SnapshotFormat;
  readonly dir: string;
}

export interface SnapshotInfo {
  chainId: Digest;
  format: SnapshotFormat;
  /** Committed path: the snapshot directory (dir) or image file (erofs). */
  path: string;
  /** Bytes on disk (apparent size of the image file; for dir, of meta only; du is slow). */
  size: number;
}

/** What `check()` found. `ok` false means fsck should report (and --repair rebuild). */
export interface CheckResult {
  chainId: Digest;
  ok: boolean;
  problem?: 'missing' | 'incomplete' | 'corrupt';
  detail?: string;
}

/** What ingesting one layer tar produced. */
export interface IngestResult {
  entries: number;
  /** Decompressed tar bytes read. */
  tarBytes: number;
}

/** One snapshot format: turns a layer tar into a lowerdir-ready snapshot. */
export interface Snapshotter {
  readonly format: SnapshotFormat;
  /** Creates a fresh private work area for chainId. Never visible as a snapshot. */
  prepare(chainId: Digest, opts?: { sizeHint?: number }): Promise<ActiveSnapshot>;
  /**
   * Reads the (decompressed, untrusted) layer tar to its end into the work area: 'dir'
   * extracts it with GNU tar, 'erofs' writes an image straight from the stream. Rejects
   * (destroying `tar`) on a hostile, corrupt or unsupported layer; the caller aborts.
   */
  ingest(active: ActiveSnapshot, tar: Readable, policy: ExtractPolicy): Promise<IngestResult>;
  /**
   * Optional: decompression, diff ID and ingest in one call, so the snapshotter may run
   * them off the main thread (erofs: a worker thread for big layers). Same contract as
   * ingest, plus the diff ID of the decompressed stream (the caller checks it).
   */
  ingestCompressed?(
    active: ActiveSnapshot,
    src: { compressed: Readable; compression: Compression; what: string; size: number; onProgress?: (tarBytes: number) => void },
    policy: ExtractPolicy,
  ): Promise<{ result: IngestResult; diffId: Digest }>;
  /** Finalizes atomically: after it returns the snapshot exists, before it, it does not. */
  commit(active: ActiveSnapshot, meta: SnapshotMeta): Promise<void>;
  /** Discards the work area. Idempotent. */
  abort(active: ActiveSnapshot): Promise<void>;
  /** A directory usable as an overlay lowerdir (mounts an EROFS image on first use). */
  mounts(chainId: Digest): Promise<string>;
  /** Undoes mounts() when nothing uses the snapshot any more (no-op for dir). */
  release(chainId: Digest): Promise<void>;
  has(chainId: Digest): Promise<boolean>;
  list(): Promise<SnapshotInfo[]>;
  remove(chainId: Digest): Promise<void>;
  check(chainId: Digest): Promise<CheckResult>;
}

/** Recorded next to each committed snapshot. */
export interface SnapshotMeta {
  chainId: Digest;
  diffId: Digest;
  parent?: Digest;
  entries: number;
  bytes: number;
  created: string;
}

/** Limits and policy for one layer's extraction. */
export interface ExtractPolicy {
  /** Max decompressed tar bytes (and sum of file sizes) per layer. Default 64 GiB. */
  maxBytes: number;
  /** Max entries per layer. Default 10 million. */
  maxEntries: number;
  /** Allow char/block device nodes. Default: true when running as uid 0 (not rootless). */
  allowDevices: boolean;
  /** Prefix for overlay xattrs: 'trusted.overlay.' (root) or 'user.overlay.' (rootless). */
  xattrPrefix: 'trusted.overlay.' | 'user.overlay.';
}

export function defaultPolicy(over: Partial<ExtractPolicy> = {}): ExtractPolicy {
  const root = process.getuid?.() === 0;
  return {
    maxBytes: 64 * 1024 ** 3,
    maxEntries: 10_000_000,
    allowDevices: root,
    xattrPrefix: root ? 'trusted.overlay.' : 'user.overlay.',
    ...over,
  };
}
