/**
 * @module image/local
 * Images as the local store holds them: resolving what a user typed (a reference, an image
 * ID or a digest prefix) to index.json entries, listing, inspecting and untagging.
 * Image ID = config digest, as Docker and Podman define it.
 */
import { BerthError, isBerthError } from '../base/errors.ts';
import type { Digest } from '../base/digest.ts';
import type { Provider, RefEntry, RefStore } from '../content/types.ts';
import type { ImageConfig, Manifest } from '../oci/types.ts';
import { validateConfig, validateManifest } from '../oci/validate.ts';
import { parseReference } from '../reference/index.ts';
import { formatPlatform } from './platform.ts';
import { SOURCE_INDEX_ANNOTATION, refNameFor, splitRefName } from './names.ts';

export interface LocalImage {
  name: string;
  repository: string;
  tag: string;
  digest: Digest;
  indexDigest?: Digest;
  id: Digest;
  created?: string;
  size: number;
  platform: string;
  manifest: Manifest;
  config: ImageConfig;
}

type Store = Provider & RefStore;

export async function loadImage(store: Store, entry: RefEntry): Promise<LocalImage> {
  const manifest = validateManifest(await store.readJSON<unknown>(entry.descriptor.digest), `manifest ${entry.descriptor.digest} of ${entry.name}`);
  const config = validateConfig(await store.readJSON<unknown>(manifest.config.digest), `config ${manifest.config.digest} of ${entry.name}`);
  const { repository, tag } = splitRefName(entry.name);
  return {
    name: entry.name,
    repository,
    tag,
    digest: entry.descriptor.digest,
    indexDigest: entry.descriptor.annotations?.[SOURCE_INDEX_ANNOTATION] as Digest | undefined,
    id: manifest.config.digest,
    created: config.created,
    size: manifest.layers.reduce((s, l) => s + l.size, 0) + manifest.config.size,
    platform: formatPlatform(entry.descriptor.platform ?? { os: config.os, architecture: config.architecture, variant: config.variant }),
    manifest,
    config,
  };
}

export async function listImages(store: Store): Promise<LocalImage[]> {
  const out: LocalImage[] = [];
  for (const e of await store.listRefs()) {
    try {
      out.push(await loadImage(store, e));
    } catch (err) {
      if (!isBerthError(err, 'NOT_FOUND') && !isBerthError(err, 'CORRUPT')) throw err;
      // A ref whose blobs are gone or invalid is reported by `berth image fsck`, not listed.
    }
  }
  return out;
}

/**
 * Finds the store entries a user means: a full or short reference (`busybox` =
 * `docker.io/library/busybox:latest`), an image ID or manifest digest (with or without
 * `sha256:`, at least 4 hex digits), or `name@digest`.
 */
export async function resolveLocal(store: Store, what: string): Promise<RefEntry[]> {
  const refs = await store.listRefs();
  const hex = what.replace(/^sha256:/, '');
  if (/^[0-9a-f]{4,64}$/.test(hex)) {
    const hits: RefEntry[] = [];
    for (const e of refs) {
      if (e.descriptor.digest.slice(7).startsWith(hex)) {
        hits.push(e);
        continue;
      }
      try {
        const m = await store.readJSON<Manifest>(e.descriptor.digest);
        if (m.config.digest.slice(7).startsWith(hex)) hits.push(e);
      } catch {
        /* unreadable entries are fsck's business */
      }
    }
    if (hits.length) return hits;
  }
  let name: string;
  try {
    const ref = parseReference(what);
    if (ref.digest) {
      const byDigest = refs.filter((e) => e.name.startsWith(`${ref.name}`) &&
        (e.descriptor.digest === ref.digest || e.descriptor.annotations?.[SOURCE_INDEX_ANNOTATION] === ref.digest));
      if (byDigest.length) return byDigest;
    }
    name = refNameFor(ref);
  } catch (e) {
    if (isBerthError(e, 'INVALID_REFERENCE')) throw new BerthError('NOT_FOUND', `image not known: ${what}`);
    throw e;
  }
  const exact = refs.filter((e) => e.name === name);
  if (exact.length) return exact;
  throw new BerthError('NOT_FOUND', `image not known: ${what}`);
}

export async function resolveOne(store: Store, what: string): Promise<LocalImage> {
  const hits = await resolveLocal(store, what);
  const ids = new Set<string>();
  const images: LocalImage[] = [];
  for (const h of hits) {
    const img = await loadImage(store, h);
    if (!ids.has(img.digest)) images.push(img);
    ids.add(img.digest);
  }
  if (images.length > 1) throw new BerthError('INVALID_ARGUMENT', `"${what}" is ambiguous: matches ${images.map((i) => i.name).join(', ')}`);
  return images[0]!;
}

export function inspectJSON(img: LocalImage): Record<string, unknown> {
  const c = img.config;
  return {
    Id: img.id,
    Digest: img.digest,
    IndexDigest: img.indexDigest,
    RepoTags: img.tag !== '<none>' ? [img.name] : [],
    RepoDigests: [`${img.repository}@${img.indexDigest ?? img.digest}`],
    Created: img.created,
    Author: c.author,
    Platform: img.platform,
    Os: c.os,
    Architecture: c.architecture,
    Variant: c.variant,
    Size: img.size,
    Config: c.config ?? {},
    RootFS: c.rootfs,
    Layers: img.manifest.layers.map((l, i) => ({ Digest: l.digest, DiffID: c.rootfs.diff_ids[i], MediaType: l.mediaType, Size: l.size })),
    History: c.history ?? [],
    ManifestMediaType: img.manifest.mediaType,
    Annotations: img.manifest.annotations ?? {},
  };
}
