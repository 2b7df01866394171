/**
 * @module image/pull
 * Pull = resolve → choose platform → fetch manifest and config → fetch layers in parallel,
 * each verified while it streams → name the image in index.json.
 *
 * Guarantees:
 * - Nothing unverified enters the store: blobs go through the content store's ingest,
 *   which commits only bytes that hash to the descriptor (a layer is also checked against
 *   its diff_id by the unpacker).
 * - A cut connection resumes with a Range request from the bytes already on disk; a
 *   corrupted blob is discarded and fetched again from zero (bounded attempts).
 * - Two pulls of the same image share work through the store's per-blob ingest lock:
 *   the second waits and then finds the blob committed.
 * - On the happy path each layer is unpacked while it downloads (a tee into the unpacker);
 *   after any resume, the layer is unpacked from the committed blob instead.
 * - Scheduling: up to `concurrency` layers download at once (default: max(4, cores)), but
 *   at most `unpackConcurrency` unpack at once (default: the core count; each unpack keeps
 *   a decompressor process and the writer busy). A layer that finds no free unpack slot
 *   when its download starts just downloads, and is unpacked from its blob as soon as a
 *   slot frees: the download of layer N+1 overlaps the writing of layer N. Layers under
 *   1 MiB need no slot (they cost milliseconds).
 * - The image is named (index.json) only after every blob and snapshot is in place.
 * - With `leases`, every digest and chain ID the pull will rely on is leased (content/lease.ts)
 *   *before* the pull checks whether it exists, so a concurrent prune cannot delete a blob
 *   or snapshot the pull has written or found "already exists". The lease goes at the end.
 */
import { availableParallelism } from 'node:os';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError, isBerthError, wrap } from '../base/errors.ts';
import { sha256, type Digest } from '../base/digest.ts';
import { isIndexType, isManifestType, layerCompression } from '../oci/media-types.ts';
import type { Descriptor, Platform } from '../oci/types.ts';
import type { ContentStore } from '../content/types.ts';
import type { ImageReference } from '../reference/index.ts';
import { formatPlatform, hostPlatform, selectManifest } from './platform.ts';
import { chainIds } from '../oci/chain-id.ts';
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, parseConfig, parseIndex, parseManifest } from '../oci/validate.ts';
import { SOURCE_INDEX_ANNOTATION, refNameFor } from './names.ts';
import { trace } from '../base/trace.ts';

export type PullEvent =
  | { type: 'resolved'; name: string; digest: Digest; platform: string; layers: number; totalBytes: number; layerDigests: Array<{ digest: Digest; size: number }> }
  | { type: 'layer-start'; digest: Digest; size: number; offset: number }
  | { type: 'layer-progress'; digest: Digest; bytes: number }
  | { type: 'layer-downloaded'; digest: Digest; size: number }
  /** Unpack state: 'waiting' for a slot, or 'extracting' with the tar bytes written so far. */
  | { type: 'layer-unpack'; digest: Digest; state: 'waiting' | 'extracting'; bytes: number }
  | { type: 'layer-done'; digest: Digest; size: number; status: 'Pull complete' | 'Already exists' | 'Unpacked'; ms?: number }
  | { type: 'retry'; digest?: Digest; attempt: number; reason: string };

/** The registry operations a pull needs (src/registry's RegistryClient satisfies it). */
export interface ManifestSource {
  getManifest(ref: ImageReference, reference: string): Promise<{ mediaType: string; digest: Digest; bytes: Buffer }>;
  fetchBlob(ref: ImageReference, desc: { digest: Digest; size: number }, opts?: { offset?: number; signal?: AbortSignal }): Promise<{ body: Readable; start: number }>;
}

/** Leases that keep what a pull holds safe from a concurrent prune (content/lease.ts). */
export interface LeaseProvider {
  create(label: string): Promise<{ add(items: { digests?: readonly Digest[]; chainIds?: readonly Digest[] }): Promise<void>; release(): Promise<void> }>;
}

/** Turns layer blobs into snapshots (src/snapshot). Optional: without it, pull stops at the store. */
export interface LayerUnpacker {
  has(chainId: Digest): Promise<boolean>;
  /** Unpacks from a stream of the compressed blob; rejects (and leaves nothing) on any mismatch. */
  unpack(args: { chainId: Digest; diffId: Digest; descriptor: Descriptor; compressed: Readable; onProgress?: (tarBytes: number) => void }): Promise<void>;
}

export interface PullOptions {
  platform?: Platform;
  onEvent?: (e: PullEvent) => void;
  signal?: AbortSignal;
  /**
   * Attempts per layer after a cut connection or reset (default 8: with the backoff, about
   * 16 s of patience, which rides out a registry or proxy that stalls for a few seconds),
   * and after corrupted content (default 3: a registry that keeps serving wrong bytes is
   * not going to heal).
   */
  layerAttempts?: number;
  corruptAttempts?: number;
  /** Layers fetched at once (default max(4, cores)). */
  concurrency?: number;
  /** Layers unpacked at once (default: the core count). */
  unpackConcurrency?: number;
  retryDelayMs?: number;
}

export interface PullResult {
  name: string;
  digest: Digest;
  indexDigest?: Digest;
  config: Digest;
  platform: string;
}


/**
 * A ManifestSource whose first manifest request for `ref` is already on its way: the
 * caller starts it while it opens the store (root checks, the snapshot format probe of a
 * new store: ~30 ms of a local busybox pull), and pullImage's first getManifest takes it.
 * Nothing is written or trusted before pullImage runs: the answer is only held in memory,
 * and an error surfaces where the request would have failed.
 */
export function prefetchManifest(registry: ManifestSource, ref: ImageReference): ManifestSource {
  const reference = topReference(ref);
  let early: ReturnType<ManifestSource['getManifest']> | undefined = registry.getManifest(ref, reference);
  early.catch(() => {});
  return {
    getManifest(r, ref2) {
      const p = early;
      early = undefined;
      return p && r === ref && ref2 === reference ? p : registry.getManifest(r, ref2);
    },
    fetchBlob: (r, desc, opts) => registry.fetchBlob(r, desc, opts),
  };
}

const topReference = (ref: ImageReference): string => ref.digest ?? ref.tag ?? 'latest';

export async function pullImage(
  ref: ImageReference,
  deps: { registry: ManifestSource; store: ContentStore; unpacker?: LayerUnpacker; leases?: LeaseProvider },
  opts: PullOptions = {},
): Promise<PullResult> {
  trace(`pull: start ${ref}`);
  const lease = deps.leases ? await deps.leases.create(`pull ${ref}`) : undefined;
  try {
    return await pullLeased(ref, deps, opts, (items) => lease?.add(items) ?? Promise.resolve());
  } finally {
    await lease?.release().catch(() => {});
  }
}

type Hold = (items: { digests?: readonly Digest[]; chainIds?: readonly Digest[] }) => Promise<void>;

async function pullLeased(
  ref: ImageReference,
  deps: { registry: ManifestSource; store: ContentStore; unpacker?: LayerUnpacker },
  opts: PullOptions,
  hold: Hold,
): Promise<PullResult> {
  const { registry, store } = deps;
  const emit = opts.onEvent ?? (() => {});
  const want = opts.platform ?? hostPlatform();
  const top = await registry.getManifest(ref, topReference(ref));
  trace('pull: manifest fetched');
  if (top.bytes.length > MAX_MANIFEST_BYTES) throw new BerthError('UNSUPPORTED', `manifest of ${ref} is too large (${top.bytes.length} bytes)`);

  let indexDigest: Digest | undefined;
  let manifestDesc: Descriptor;
  let manifestBytes: Buffer;
  if (isIndexType(top.mediaType)) {
    const index = parseIndex(top.bytes, `index ${top.digest} of ${ref}`);
    const chosen = selectManifest(index.manifests, want);
    if (!isManifestType(chosen.mediaType)) {
      throw new BerthError('UNSUPPORTED', `unsupported media type ${chosen.mediaType} for ${formatPlatform(chosen.platform)} in ${ref}`);
    }
    const m = await registry.getManifest(ref, chosen.digest);
    if (m.digest !== chosen.digest) throw new BerthError('DIGEST_MISMATCH', `manifest ${chosen.digest}: registry returned ${m.digest}`);
    indexDigest = top.digest;
    await hold({ digests: [top.digest] });
    await store.putBlob(top.bytes, { digest: top.digest, size: top.bytes.length });
    manifestDesc = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length, platform: chosen.platform };
    manifestBytes = m.bytes;
  } else if (isManifestType(top.mediaType)) {
    manifestDesc = { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length };
    manifestBytes = top.bytes;
  } else {
    throw new BerthError('UNSUPPORTED', `unsupported manifest media type "${top.mediaType}" for ${ref}`);
  }

  // every digest is checked here, before it names a URL, a blob or a snapshot
  const manifest = parseManifest(manifestBytes, `manifest ${manifestDesc.digest} of ${ref}`);
  for (const l of manifest.layers) {
    if (layerCompression(l.mediaType) === undefined) {
      throw new BerthError('UNSUPPORTED', `unsupported layer media type "${l.mediaType}" (${l.digest}) in ${ref}`);
    }
  }
  if (manifest.config.size > MAX_CONFIG_BYTES) throw new BerthError('UNSUPPORTED', `config of ${ref} is too large`);
  const configBytes = await fetchSmallBlob(registry, ref, manifest.config, opts);
  const config = parseConfig(configBytes, `config ${manifest.config.digest} of ${ref}`);
  trace('pull: config fetched');
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== manifest.layers.length) {
    throw new BerthError('CORRUPT', `config ${manifest.config.digest} lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers`);
  }
  if (!manifestDesc.platform && config.os && config.architecture) {
    manifestDesc.platform = { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
  }
  const name = refNameFor(ref);
  const totalBytes = manifest.layers.reduce((s, l) => s + l.size, 0);
  emit({
    type: 'resolved', name, digest: manifestDesc.digest, platform: formatPlatform(manifestDesc.platform),
    layers: manifest.layers.length, totalBytes, layerDigests: manifest.layers.map((l) => ({ digest: l.digest, size: l.size })),
  });

  const chains = chainIds(diffIds);
  // lease before anything is written or checked for existence (see the module comment)
  await hold({ digests: [manifestDesc.digest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)], chainIds: chains });
  // The config and manifest (verified, leased) are written while the layers download:
  // each putBlob is two fsyncs, which had waited in line before and after the layers.
  // The image is still named only once all of them and every layer are in place.
  const small = Promise.all([
    store.putBlob(configBytes, { digest: manifest.config.digest, size: manifest.config.size }),
    store.putBlob(manifestBytes, { digest: manifestDesc.digest, size: manifestDesc.size }),
  ]);
  small.catch(() => {});
  const cores = availableParallelism();
  const fetcher = new LayerFetcher(ref, registry, store, deps.unpacker, emit, opts, new Slots(opts.unpackConcurrency ?? cores));
  try {
    await runLimited(manifest.layers.map((l, i) => () => fetcher.layer(l, diffIds[i]!, chains[i]!)), opts.concurrency ?? Math.max(4, cores));
  } catch (e) {
    await small.catch(() => {}); // nothing of this pull still writing once it has failed
    throw e;
  }
  trace('pull: every layer in place');
  await small;

  const annotations: Record<string, string> = {};
  if (indexDigest) annotations[SOURCE_INDEX_ANNOTATION] = indexDigest;
  await store.setRef(name, { ...manifestDesc, annotations });
  trace('pull: named');
  return { name, digest: manifestDesc.digest, indexDigest, config: manifest.config.digest, platform: formatPlatform(manifestDesc.platform) };
}

async function fetchSmallBlob(registry: ManifestSource, ref: ImageReference, desc: Descriptor, opts: PullOptions): Promise<Buffer> {
  const { body } = await registry.fetchBlob(ref, desc, { signal: opts.signal });
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > desc.size) {
      body.destroy();
      break;
    }
    chunks.push(c);
  }
  const bytes = Buffer.concat(chunks);
  const got = sha256(bytes);
  if (bytes.length !== desc.size || got !== desc.digest) {
    throw new BerthError('DIGEST_MISMATCH', `blob ${desc.digest}: got ${got} (${bytes.length} of ${desc.size} bytes)`);
  }
  return bytes;
}

function isTransient(e: unknown): boolean {
  if (isBerthError(e)) return ['CONNECTION_REFUSED', 'TIMEOUT', 'DIGEST_MISMATCH', 'REGISTRY_ERROR'].includes(e.code) || /premature|aborted|reset|socket|terminated/i.test(e.message);
  const code = (e as { code?: string })?.code ?? '';
  return /ECONNRESET|EPIPE|ETIMEDOUT|UND_ERR|ERR_STREAM_PREMATURE_CLOSE|ECONNREFUSED/.test(code) || /premature|aborted|terminated|other side closed/i.test(String((e as Error)?.message));
}

/** Layers smaller than this (compressed) unpack at once, without an unpack slot. */
const TINY_LAYER = 1 << 20;

class LayerFetcher {
  constructor(
    private readonly ref: ImageReference,
    private readonly registry: ManifestSource,
    private readonly store: ContentStore,
    private readonly unpacker: LayerUnpacker | undefined,
    private readonly emit: (e: PullEvent) => void,
    private readonly opts: PullOptions,
    private readonly slots: Slots,
  ) {}

  private unpackArgs(desc: Descriptor, diffId: Digest, chainId: Digest, compressed: Readable) {
    return {
      chainId, diffId, descriptor: desc, compressed,
      onProgress: (bytes: number) => this.emit({ type: 'layer-unpack', digest: desc.digest, state: 'extracting', bytes }),
    };
  }

  async layer(desc: Descriptor, diffId: Digest, chainId: Digest): Promise<void> {
    const started = Date.now();
    const haveSnapshot = this.unpacker ? await this.unpacker.has(chainId) : true;
    if (haveSnapshot && (await this.store.has(desc.digest))) {
      this.emit({ type: 'layer-done', digest: desc.digest, size: desc.size, status: 'Already exists' });
      return;
    }
    const attempts = this.opts.layerAttempts ?? 8;
    const corruptAttempts = this.opts.corruptAttempts ?? 3;
    let corrupt = 0;
    let streamedUnpack = false;
    let slot = false; // holding an unpack slot
    // a tiny layer costs a few ms to unpack: it needs no slot (waiting for one cost a
    // 703-byte Debian layer ~0.3 s behind the two big ones)
    const tiny = desc.size < TINY_LAYER;
    try {
      for (let attempt = 1; ; attempt++) {
        const w = await this.store.ingest(desc);
        if (w.committed) break;
        // Unpack while streaming only on a fresh, whole download with a free unpack slot;
        // otherwise (after a resume, or all slots busy) from the committed blob.
        if (this.unpacker && !haveSnapshot && w.offset === 0 && !streamedUnpack && !slot && !tiny) slot = this.slots.tryTake();
        const tee = this.unpacker && !haveSnapshot && w.offset === 0 && !streamedUnpack && (slot || tiny);
        let unpackDone: Promise<void> | undefined;
        try {
          if (w.offset === desc.size) {
            // A partial that is already whole (a pull killed between the last byte and the
            // commit): nothing is left to fetch, and `Range: bytes=SIZE-` is unsatisfiable
            // (registries answer 416 or drop the connection). commit() checks its digest;
            // a mismatch discards it and the next attempt starts from byte 0.
            await w.commit();
            trace(`pull: ${desc.digest.slice(7, 19)} complete from an earlier pull's partial`);
            this.emit({ type: 'layer-downloaded', digest: desc.digest, size: desc.size });
            break;
          }
          let toUnpack: PassThrough | undefined;
          if (tee) {
            // The unpacker gets ready (its lock, its work dir, the writer process) while the
            // blob request is under way; the bytes follow once the registry answers.
            toUnpack = new PassThrough({ highWaterMark: 1 << 20 });
            // The unpacker may attach its listeners only after taking its lock; its promise
            // reports the failure, so an early error must not be an unhandled 'error' event.
            toUnpack.on('error', () => {});
            unpackDone = this.unpacker!.unpack(this.unpackArgs(desc, diffId, chainId, toUnpack));
            unpackDone.catch(() => {});
            streamedUnpack = true;
          }
          const { body, start } = await this.registry.fetchBlob(this.ref, desc, { offset: w.offset, signal: this.opts.signal }).catch((e: unknown) => {
            toUnpack?.destroy(new BerthError('CANCELLED', `download of ${desc.digest} failed before its first byte`));
            throw e;
          });
          if (start !== w.offset) {
            // The server ignored Range: start over.
            body.destroy();
            if (toUnpack) {
              toUnpack.destroy(new BerthError('CANCELLED', `download of ${desc.digest} restarts`));
              await unpackDone!.catch(() => {});
              unpackDone = undefined;
              streamedUnpack = false;
            }
            await w.abort(false);
            continue;
          }
          this.emit({ type: 'layer-start', digest: desc.digest, size: desc.size, offset: start });
          let bytes = start;
          let last = 0;
          const counter = new Transform({
            transform: (chunk: Buffer, _e, cb) => {
              bytes += chunk.length;
              if (bytes > desc.size) return cb(new BerthError('DIGEST_MISMATCH', `blob ${desc.digest} is larger than its descriptor (${desc.size} bytes)`));
              const now = Date.now();
              if (now - last > 100) {
                last = now;
                this.emit({ type: 'layer-progress', digest: desc.digest, bytes });
              }
              cb(null, chunk);
            },
          });
          if (toUnpack) {
            const sink = toUnpack;
            counter.pipe(sink);
            counter.on('error', (e) => sink.destroy(e));
            counter.on('close', () => {
              if (!counter.readableEnded) sink.destroy(new BerthError('CANCELLED', `download of ${desc.digest} was interrupted`));
            });
          }
          await pipeline(body, counter, w.stream);
          this.emit({ type: 'layer-progress', digest: desc.digest, bytes });
          await w.commit();
          trace(`pull: ${desc.digest.slice(7, 19)} downloaded (${desc.size} bytes)`);
          this.emit({ type: 'layer-downloaded', digest: desc.digest, size: desc.size });
          if (unpackDone) await unpackDone;
          break;
        } catch (e) {
          const mismatch = isBerthError(e, 'DIGEST_MISMATCH');
          await w.abort(!mismatch && isTransient(e)).catch(() => {});
          if (unpackDone) await unpackDone.catch(() => {});
          streamedUnpack = false;
          if (mismatch) corrupt++;
          if (!isTransient(e) || attempt >= attempts || corrupt >= corruptAttempts || this.opts.signal?.aborted) throw wrap(`layer ${desc.digest}`, e);
          this.emit({ type: 'retry', digest: desc.digest, attempt: attempt + 1, reason: (e as Error).message });
          await new Promise((r) => setTimeout(r, Math.min((this.opts.retryDelayMs ?? 200) * 2 ** (attempt - 1), 5000)));
        }
      }
      if (this.unpacker && !streamedUnpack && !(await this.unpacker.has(chainId))) {
        if (!slot && !tiny) {
          this.emit({ type: 'layer-unpack', digest: desc.digest, state: 'waiting', bytes: 0 });
          await this.slots.take();
          slot = true;
        }
        await this.unpacker.unpack(this.unpackArgs(desc, diffId, chainId, this.store.openRead(desc.digest)));
      }
    } finally {
      if (slot) this.slots.give();
    }
    trace(`pull: ${desc.digest.slice(7, 19)} unpacked`);
    this.emit({ type: 'layer-done', digest: desc.digest, size: desc.size, status: 'Pull complete', ms: Date.now() - started });
  }
}

/** A counting semaphore for unpack slots. */
class Slots {
  private free: number;
  private readonly waiters: Array<() => void> = [];
  constructor(n: number) {
    this.free = Math.max(1, n);
  }
  tryTake(): boolean {
    if (this.free === 0) return false;
    this.free--;
    return true;
  }
  take(): Promise<void> {
    if (this.tryTake()) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }
  give(): void {
    const w = this.waiters.shift();
    if (w) w();
    else this.free++;
  }
}

/** Runs tasks with at most `limit` in flight; the first failure cancels the rest's start. */
async function runLimited(tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < tasks.length) {
      const t = tasks[next++]!;
      try {
        await t();
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  if (failed !== undefined) throw failed;
}

