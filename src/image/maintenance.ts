/**
 * @module image/maintenance
 * Store-wide operations that span blobs and snapshots: prune (remove what no image needs),
 * fsck (verify every blob, every reference and every snapshot; optionally rebuild broken
 * snapshots from their blobs) and read-only image mounts for inspection.
 */
import { join, resolve } from 'node:path';
import type { Digest } from '../base/digest.ts';
import { BerthError, isBerthError } from '../base/errors.ts';
import { isManifestType } from '../oci/media-types.ts';
import { fsckBlobs, gcBlobs, Leases, type LocalStore } from '../content/index.ts';
import type { ContentStore } from '../content/types.ts';
import type { Manifest, ImageConfig } from '../oci/types.ts';
import type { SnapshotStore } from '../snapshot/index.ts';
import { chainIds } from '../oci/chain-id.ts';
import { validateConfig, validateManifest } from '../oci/validate.ts';
import type { LocalImage } from './local.ts';

export interface MaintenanceServices {
  root: string;
  store: ContentStore;
  unpacker?: unknown;
}

function snapshots(svc: MaintenanceServices): SnapshotStore {
  if (!svc.unpacker) throw new BerthError('FAILED_PRECONDITION', 'snapshot store is not available');
  return svc.unpacker as SnapshotStore;
}

export interface NeededLayer {
  chainId: Digest;
  diffId: Digest;
  descriptor: Manifest['layers'][number];
  image: string;
}

/** Every layer snapshot some named image needs, with the blob it is built from. */
async function neededLayers(store: ContentStore): Promise<Map<Digest, NeededLayer>> {
  const out = new Map<Digest, NeededLayer>();
  for (const ref of await store.listRefs()) {
    let manifest: Manifest;
    let config: ImageConfig;
    try {
      manifest = validateManifest(await store.readJSON<unknown>(ref.descriptor.digest), `manifest ${ref.descriptor.digest}`);
      config = validateConfig(await store.readJSON<unknown>(manifest.config.digest), `config ${manifest.config.digest}`);
    } catch {
      continue; // reported by the blob checks
    }
    const ids = chainIds(config.rootfs?.diff_ids ?? []);
    ids.forEach((c, i) => {
      const d = manifest.layers[i];
      if (d && !out.has(c)) out.set(c, { chainId: c, diffId: config.rootfs.diff_ids[i]!, descriptor: d, image: ref.name });
    });
  }
  return out;
}

/** What containers still use, so prune keeps it even when no name points at it any more. */
export interface InUse {
  manifests: Digest[];
  chainIds: Digest[];
}

/**
 * Removes blobs and snapshots that no image, no container and no operation in flight
 * needs. Holds the prune lock throughout and reads the leases *before* the refs: a pull
 * names its image before it drops its lease, so whatever it holds is seen in one or the
 * other (content/lease.ts).
 */
export async function pruneStore(svc: MaintenanceServices, inUse: InUse = { manifests: [], chainIds: [] }): Promise<{ blobs: number; snapshots: number; freedBytes: number }> {
  const store = svc.store as LocalStore;
  const leases = new Leases(svc.root);
  return leases.withPruneLock(async () => {
    const held = await leases.held();
    const roots = (await store.listRefs()).map((r) => r.descriptor);
    for (const m of inUse.manifests) {
      if (await store.has(m)) roots.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: m, size: (await store.info(m))?.size ?? 0 });
    }
    const gc = await gcBlobs(store, roots, { minAgeMs: 0, keep: held.digests });
    let snaps = 0;
    if (svc.unpacker) {
      const s = snapshots(svc);
      const needed = await neededLayers(svc.store);
      const used = new Set<string>([...inUse.chainIds, ...held.chainIds]);
      const { releaseUnusedLayers } = await import('../snapshot/index.ts');
      await releaseUnusedLayers(s);
      for (const info of await s.list()) {
        if (!needed.has(info.chainId) && !used.has(info.chainId)) {
          await s.remove(info.chainId).catch(() => undefined);
          snaps++;
        }
      }
    }
    return { blobs: gc.removed.length, snapshots: snaps, freedBytes: gc.freedBytes };
  });
}

export interface FsckFinding {
  kind: string;
  message: string;
  digest?: string;
  ref?: string;
  repaired?: boolean;
}

export async function fsckStore(svc: MaintenanceServices, opts: { repair: boolean }): Promise<FsckFinding[]> {
  const findings: FsckFinding[] = [];
  const store = svc.store as LocalStore;
  // fsckBlobs hashes every blob and walks index.json → manifests → configs and layers.
  for (const f of await fsckBlobs(store)) {
    if (f.kind === 'missing-child') continue; // other platforms of an index are not pulled
    findings.push({ kind: f.kind, message: f.message, digest: f.digest, ref: f.ref });
  }
  // a manifest or config that fails validation (imported before berth checked it) is
  // unusable: report it with the field that is wrong
  const { loadImage } = await import('./local.ts');
  for (const ref of await store.listRefs()) {
    if (!isManifestType(ref.descriptor.mediaType)) continue;
    await loadImage(store, ref).catch((e: unknown) => {
      if (isBerthError(e, 'CORRUPT')) findings.push({ kind: 'bad-metadata', message: `image ${ref.name}: ${e.message}`, digest: ref.descriptor.digest, ref: ref.name });
    });
  }
  if (svc.unpacker) {
    const s = snapshots(svc);
    for (const layer of (await neededLayers(store)).values()) {
      const r = await s.check(layer.chainId);
      if (r.ok) continue;
      const finding: FsckFinding = {
        kind: `snapshot-${r.problem ?? 'bad'}`,
        message: `snapshot ${layer.chainId} (layer ${layer.descriptor.digest} of ${layer.image}) is ${r.problem ?? 'damaged'}${r.detail ? `: ${r.detail}` : ''}`,
        digest: layer.chainId,
        ref: layer.image,
      };
      if (opts.repair && (await store.has(layer.descriptor.digest))) {
        await s.rebuild(layer.chainId, { diffId: layer.diffId, descriptor: layer.descriptor, compressed: store.openRead(layer.descriptor.digest) });
        finding.repaired = true;
      }
      findings.push(finding);
    }
  }
  return findings;
}

export async function mountImage(svc: MaintenanceServices, img: LocalImage, dir: string | undefined): Promise<string> {
  const s = snapshots(svc);
  const ids = chainIds(img.config.rootfs.diff_ids);
  for (const c of ids) {
    if (!(await s.has(c))) throw new BerthError('CORRUPT', `snapshot ${c} of ${img.name} is missing (run: berth image fsck --repair)`);
  }
  const { mountImage: mount } = await import('../snapshot/index.ts');
  const target = dir ? resolve(dir) : join(svc.root, 'mounts', img.id.slice(7, 19));
  return mount(s, ids, target);
}

export async function unmountImage(svc: MaintenanceServices, what: string): Promise<void> {
  const { umountImage } = await import('../snapshot/index.ts');
  const s = snapshots(svc);
  let target = resolve(what);
  if (!what.includes('/')) {
    const { resolveOne } = await import('./local.ts');
    try {
      const img = await resolveOne(svc.store, what);
      target = join(svc.root, 'mounts', img.id.slice(7, 19));
    } catch {
      /* treat as a path */
    }
  }
  await umountImage(s, target);
}


/** Builds any missing layer snapshot of the image named by manifest digest (after import). */
export async function ensureSnapshots(svc: MaintenanceServices, manifestDigest: Digest): Promise<number> {
  if (!svc.unpacker) return 0;
  const s = snapshots(svc);
  const manifest = validateManifest(await svc.store.readJSON<unknown>(manifestDigest), `manifest ${manifestDigest}`);
  const config = validateConfig(await svc.store.readJSON<unknown>(manifest.config.digest), `config ${manifest.config.digest}`);
  const ids = chainIds(config.rootfs.diff_ids);
  let n = 0;
  for (const [i, c] of ids.entries()) {
    if (await s.has(c)) continue;
    const desc = manifest.layers[i]!;
    await s.unpack({ chainId: c, diffId: config.rootfs.diff_ids[i]!, descriptor: desc, compressed: svc.store.openRead(desc.digest) });
    n++;
  }
  return n;
}
