/**
 * @module image/archive/oci-import
 * Import from an OCI image layout directory (what `skopeo copy ... oci:DIR:TAG`, buildah,
 * `docker buildx --output type=oci` and our own exportOCILayout write).
 *
 * Every blob reachable from the layout's index.json is copied through store.ingest, so it
 * is verified against its digest on the way in. Children of an index that the layout does
 * not contain (platforms it was not asked to carry) are skipped; a missing config or layer
 * of a manifest is CORRUPT. Blobs are copied leaves first, so a ref is set only after its
 * whole graph is in the store.
 *
 * Naming: an entry's ref.name annotation names it. A full reference is normalized
 * (`busybox:1` → `docker.io/library/busybox:1`); a bare tag (`latest`) is put under the
 * repository of opts.name. An entry without ref.name gets opts.name when it is the only
 * entry, and is otherwise imported untagged (reported with name undefined).
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { digestAlgorithm, digestHex, isDigest, type Digest } from '../../base/digest.ts';
import { BerthError, isBerthError, wrap } from '../../base/errors.ts';
import { isErrno } from '../../base/fs.ts';
import type { ContentStore } from '../../content/types.ts';
import { isIndexType, isManifestType } from '../../oci/media-types.ts';
import { REF_NAME_ANNOTATION, type Descriptor, type Index, type Manifest } from '../../oci/types.ts';
import { MAX_MANIFEST_BYTES, parseJSONDocument, validateIndex, validateManifest } from '../../oci/validate.ts';
import { ingestChunks } from './blobs.ts';
import { normalizeName, refNameToStoreName } from './names.ts';

export interface ImportOptions {
  /** Repository (or full name) for entries tagged only by a bare tag or not at all. */
  name?: string;
}

export interface ImportedImage {
  /** Store name set for this image; undefined when imported untagged. */
  name?: string;
  /** Digest of the imported manifest or index (= descriptor.digest). */
  digest: Digest;
  descriptor: Descriptor;
}

function blobFile(dir: string, d: Descriptor): string {
  if (!isDigest(d.digest)) throw new BerthError('CORRUPT', `bad digest ${JSON.stringify(d.digest)} in OCI layout ${dir}`);
  return join(dir, 'blobs', digestAlgorithm(d.digest), digestHex(d.digest));
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return false;
    throw wrap(path, e);
  }
}

/** Reads a small JSON file of the layout: regular files only, at most MAX_MANIFEST_BYTES. */
async function readJSONFile<T>(path: string, what: string): Promise<T> {
  let raw: Buffer;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new BerthError('CORRUPT', `${what} (${path}) is not a regular file`);
    if (st.size > MAX_MANIFEST_BYTES) throw new BerthError('CORRUPT', `${what} (${path}) is too large (${st.size} bytes, limit ${MAX_MANIFEST_BYTES})`);
    raw = await readFile(path);
  } catch (e) {
    throw isBerthError(e) ? e : wrap(`reading ${what}`, e);
  }
  return parseJSONDocument(raw, `${what} (${path})`, MAX_MANIFEST_BYTES) as T;
}

/** Reads index.json of an OCI layout directory after checking oci-layout. */
export async function readLayoutIndex(dir: string): Promise<Index> {
  const layout = await readJSONFile<{ imageLayoutVersion?: string }>(join(dir, 'oci-layout'), 'oci-layout');
  if (layout.imageLayoutVersion !== '1.0.0') {
    throw new BerthError('UNSUPPORTED', `${dir}: unsupported OCI layout version ${JSON.stringify(layout.imageLayoutVersion)}`);
  }
  return validateIndex(await readJSONFile<unknown>(join(dir, 'index.json'), 'index.json'), `${dir}/index.json`);
}

/** Copies the graph below d from the layout into the store, leaves first. */
async function copyGraph(store: ContentStore, dir: string, d: Descriptor, seen: Set<string>, optional: boolean): Promise<boolean> {
  if (seen.has(d.digest)) return true;
  const path = blobFile(dir, d);
  if (!(await exists(path))) {
    if (optional) return false;
    throw new BerthError('CORRUPT', `OCI layout ${dir} lacks blob ${d.digest} (${d.mediaType})`, { details: { digest: d.digest } });
  }
  if (isIndexType(d.mediaType) || isManifestType(d.mediaType)) {
    const raw = await readJSONFile<unknown>(path, `${d.mediaType} ${d.digest}`);
    if (isIndexType(d.mediaType)) {
      const doc: Index = validateIndex(raw, `index ${d.digest} in ${dir}`);
      for (const m of doc.manifests) await copyGraph(store, dir, m, seen, true);
    } else {
      const doc: Manifest = validateManifest(raw, `manifest ${d.digest} in ${dir}`);
      await copyGraph(store, dir, doc.config, seen, false);
      for (const l of doc.layers) await copyGraph(store, dir, l, seen, false);
    }
  }
  await ingestChunks(store, d, (offset) => createReadStream(path, { start: offset }));
  seen.add(d.digest);
  return true;
}

/** Imports every image of an OCI layout directory; returns what was imported. */
export async function importOCILayout(store: ContentStore, dir: string, opts: ImportOptions = {}): Promise<ImportedImage[]> {
  const index = await readLayoutIndex(dir);
  // Work out names before copying anything, so a naming error costs no I/O.
  const planned = index.manifests.map((d) => {
    const ann = d.annotations?.[REF_NAME_ANNOTATION];
    let name: string | undefined;
    if (ann !== undefined) name = refNameToStoreName(ann, opts.name);
    else if (opts.name !== undefined && index.manifests.length === 1) name = normalizeName(opts.name);
    const { [REF_NAME_ANNOTATION]: _drop, ...rest } = d.annotations ?? {};
    const descriptor: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
    if (d.platform) descriptor.platform = d.platform;
    if (Object.keys(rest).length > 0) descriptor.annotations = rest;
    return { name, descriptor };
  });
  const seen = new Set<string>();
  const out: ImportedImage[] = [];
  for (const p of planned) {
    try {
      await copyGraph(store, dir, p.descriptor, seen, false);
    } catch (e) {
      throw isBerthError(e) ? wrap(`importing ${p.name ?? p.descriptor.digest} from ${dir}`, e) : e;
    }
    if (p.name !== undefined) await store.setRef(p.name, p.descriptor);
    out.push(p.name === undefined ? { digest: p.descriptor.digest, descriptor: p.descriptor } : { name: p.name, digest: p.descriptor.digest, descriptor: p.descriptor });
  }
  return out;
}
