/**
 * @module content/types
 * The content store: blobs addressed by digest, in a standard OCI image layout.
 *
 * Glossary (containerd's words): a *blob* is committed content at blobs/<alg>/<hex>; an
 * *ingest* is content being written (ingest/<hex>.partial) that becomes a blob only when
 * its bytes hash to the expected digest (`commit`). Nothing unverified is ever visible under
 * blobs/. A *ref* is a name in index.json (annotation org.opencontainers.image.ref.name)
 * pointing at a manifest or index descriptor.
 *
 * Lifecycle of a download:
 *   const w = await store.ingest(desc);        // exclusive per digest, across processes
 *   if (w.committed) -> already there, done    // (another process finished it meanwhile)
 *   // w.offset > 0 when a previous attempt left a partial file: resume from there
 *   pipe bytes into w.stream; await w.commit() // verifies size+digest, fsyncs, renames
 *   or await w.abort(keepPartial)              // on failure
 *
 * Consumers ask for the narrowest role they need (Provider to read, Ingester to write).
 */
import type { Readable, Writable } from 'node:stream';
import type { Digest } from '../base/digest.ts';
import type { Descriptor } from '../oci/types.ts';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** Read committed blobs. */
export interface Provider {
  has(digest: Digest): Promise<boolean>;
  info(digest: Digest): Promise<BlobInfo | undefined>;
  /** Absolute path of a committed blob (for tools that read files, e.g. tar -f). */
  blobPath(digest: Digest): string;
  readBlob(digest: Digest): Promise<Buffer>;
  readJSON<T>(digest: Digest): Promise<T>;
  openRead(digest: Digest, opts?: { start?: number }): Readable;
}

export interface IngestWriter {
  /** True when the blob already exists (nothing to write). */
  readonly committed: boolean;
  /** Bytes already on disk from an earlier, interrupted attempt (resume from here). */
  readonly offset: number;
  /** Append-only sink for the bytes from `offset` on. */
  readonly stream: Writable;
  /** Verifies size and digest of everything written, then makes the blob visible. */
  commit(): Promise<void>;
  /** Drops the ingest. keepPartial=true leaves bytes for a later resume (e.g. cut connection). */
  abort(keepPartial?: boolean): Promise<void>;
}

export interface IngestOptions {
  /** Stop waiting for another writer of the same digest (CANCELLED). */
  signal?: AbortSignal;
  /** Give up waiting for another writer of the same digest after this many ms (TIMEOUT). */
  lockTimeoutMs?: number;
}

/** Write blobs. */
export interface Ingester {
  ingest(expected: Pick<Descriptor, 'digest' | 'size'>, opts?: IngestOptions): Promise<IngestWriter>;
  /** Small blobs (manifests, configs): verify and store in one call. */
  putBlob(data: Buffer, expected?: Pick<Descriptor, 'digest' | 'size'>): Promise<Digest>;
}

/** Manage committed blobs. */
export interface Manager {
  walk(): AsyncIterable<BlobInfo>;
  delete(digest: Digest): Promise<void>;
}

export interface RefEntry {
  name: string;
  descriptor: Descriptor;
}

/** The names in index.json. Updates are serialized by a lock and written atomically. */
export interface RefStore {
  listRefs(): Promise<RefEntry[]>;
  getRef(name: string): Promise<Descriptor | undefined>;
  /** Adds or replaces the entry for name. */
  setRef(name: string, descriptor: Descriptor): Promise<void>;
  deleteRef(name: string): Promise<boolean>;
  /** Runs fn with the index lock held (read-modify-write of index.json). */
  withIndexLock<T>(fn: () => Promise<T>): Promise<T>;
}

export interface ContentStore extends Provider, Ingester, Manager, RefStore {
  readonly root: string;
}
